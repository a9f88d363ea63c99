/**
 * Counting money from receipts (docs/receipts.md §4): receipts are cumulative per stream, so a
 * site credits only the increase of `tot` over the highest `tot` already seen for that `sid`.
 * Replays, duplicates and late receipts then credit nothing, and a lost receipt loses nothing.
 */

import { isVerifiedReceipt } from './verifier.js';

/**
 * Where a `CreditTracker` keeps the highest `tot` per `sid`. A site with several processes plugs
 * in its database here; `advance` must be atomic (e.g. one
 * `UPDATE streams SET tot = GREATEST(tot, $2) WHERE sid = $1 RETURNING <old tot>` in a transaction,
 * or an upsert with a row lock).
 * @typedef {object} CreditStore
 * @property {(sid: string, tot: bigint) => bigint | Promise<bigint>} advance
 *   Atomically raise the stored highest `tot` of `sid` to `tot` if `tot` is higher, and return the
 *   highest `tot` stored before the call (`0n` for a new `sid`).
 */

/** A `CreditStore` in process memory: right for one process, lost on restart. */
export class MemoryCreditStore {
  /** @type {Map<string, bigint>} */
  #highest = new Map();

  /**
   * @param {string} sid
   * @param {bigint} tot
   * @returns {bigint}
   */
  advance(sid, tot) {
    const previous = this.#highest.get(sid) ?? 0n;
    if (tot > previous) this.#highest.set(sid, tot);
    return previous;
  }
}

/** Applies the credit rule to verified receipts. */
export class CreditTracker {
  #store;

  /** @param {CreditStore} [store]  default: a fresh `MemoryCreditStore` */
  constructor(store = new MemoryCreditStore()) {
    this.#store = store;
  }

  /**
   * The amount (minor units) this receipt adds to its stream: `tot` minus the highest `tot` seen
   * before for its `sid`, or `0n` for a replay or an older receipt.
   * @param {import('./verifier.js').Receipt} receipt  a receipt returned by a verifier's `verify`
   * @returns {Promise<bigint>}
   */
  async credit(receipt) {
    if (!isVerifiedReceipt(receipt)) {
      throw new TypeError('CreditTracker.credit: expected a receipt returned by verify(), got another object');
    }
    const previous = await this.#store.advance(receipt.sid, receipt.tot);
    return receipt.tot > previous ? receipt.tot - previous : 0n;
  }
}
