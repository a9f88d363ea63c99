/**
 * The server side of the page bridge for Node sites: a plain `node:http` handler that receives
 * forwarded receipts (README.md "Forwarding protocol"), verifies them, credits the visitor's site
 * session with the per-`sid` increase rule, and answers "has this visitor paid at least X?".
 *
 * No runtime imports from Node: only `node:http` types, so the module also loads in other runtimes.
 */

import { RECEIPT_ERROR_CODES, ReceiptError } from './errors.js';
import { CreditTracker } from './credits.js';
import { handleJsonPost, requireSession, siteVerifier } from './http.js';

// The purchase endpoint of one-time payments lives in purchases.js; Node sites import both from here.
export {
  MAX_PURCHASE_BODY_BYTES, MemoryPurchaseStore, PURCHASE_ERROR_CODES, PurchaseError, createPurchaseHandler,
} from './purchases.js';

/** Most receipts in one request. */
export const MAX_RECEIPTS_PER_REQUEST = 100;
/** Largest request body in bytes (100 receipts of 4096 bytes and the JSON around them fit). */
export const MAX_BODY_BYTES = 524288;

const BINDING_PATTERN = /^[\x20-\x7e]{1,256}$/;
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)$/;

/**
 * Codes the handler puts in `results[i].code`: `ok`, every `ReceiptError` code, `wrong_asset` (not
 * in the site's asset) and `session_mismatch` (the stream was credited to another visitor session).
 * @typedef {'ok' | import('./errors.js').ReceiptErrorCode | 'wrong_asset' | 'session_mismatch'} ResultCode
 */
/** @typedef {{code: 'ok', credited: string} | {code: ResultCode, message: string}} ReceiptResult */
/** @typedef {{total: string, currency: string, scale: number}} PaidTotal */
/** @typedef {{results: ReceiptResult[], paid: PaidTotal}} AcceptAnswer */

/**
 * Where the handler keeps its state: per `sid` the visitor session that owns the stream and its
 * highest `tot`; per session its binding value and its credits with their times. Every method may
 * return a promise. With several processes, back it with your database; `advance` and
 * `setBindingIfAbsent` must each be atomic (one transaction).
 * @typedef {object} SiteStore
 * @property {(session: string, sid: string, tot: bigint, atS: number) => bigint | null | Promise<bigint | null>} advance
 *   Atomically: a new `sid` becomes `session`'s stream with highest `tot` `0`. If the stream is
 *   `session`'s and `tot` is above its highest, raise the highest to `tot` and record a credit of
 *   the difference at `atS` (seconds). Return the highest before the call (the `CreditStore`
 *   contract of credits.js), or null, changing nothing, when the stream is another session's.
 * @property {(session: string) => string | null | Promise<string | null>} getBinding
 *   The binding value issued to this visitor session, or null.
 * @property {(session: string, binding: string) => string | Promise<string>} setBindingIfAbsent
 *   Store `binding` for the session unless it has one; return the session's binding either way.
 * @property {(session: string, sinceS: number | null) => bigint | Promise<bigint>} paidSince
 *   The sum credited to the session at or after `sinceS` (all time when null).
 */

/**
 * A `SiteStore` in process memory: right for one process and for tests; lost on restart.
 * Credits are kept per session and per second, so memory grows with paying seconds, not receipts.
 */
export class MemorySiteStore {
  /** @type {Map<string, {session: string, highest: bigint}>} */ #streams = new Map();
  /** @type {Map<string, string>} */ #bindings = new Map();
  /** @type {Map<string, {atS: number, minor: bigint}[]>} */ #credits = new Map();

  /**
   * @param {string} session
   * @param {string} sid
   * @param {bigint} tot
   * @param {number} atS
   * @returns {bigint | null}
   */
  advance(session, sid, tot, atS) {
    const stream = this.#streams.get(sid) ?? { session, highest: 0n };
    if (stream.session !== session) return null;
    this.#streams.set(sid, stream);
    const previous = stream.highest;
    if (tot > previous) {
      stream.highest = tot;
      this.#addCredit(session, tot - previous, atS);
    }
    return previous;
  }

  /** @param {string} session */
  getBinding(session) {
    return this.#bindings.get(session) ?? null;
  }

  /**
   * @param {string} session
   * @param {string} binding
   * @returns {string}
   */
  setBindingIfAbsent(session, binding) {
    const existing = this.#bindings.get(session);
    if (existing !== undefined) return existing;
    this.#bindings.set(session, binding);
    return binding;
  }

  /**
   * @param {string} session
   * @param {bigint} minor
   * @param {number} atS
   */
  #addCredit(session, minor, atS) {
    const second = Math.floor(atS);
    const entries = this.#credits.get(session) ?? [];
    const last = entries.at(-1);
    if (last !== undefined && last.atS === second) last.minor += minor;
    else entries.push({ atS: second, minor });
    this.#credits.set(session, entries);
  }

  /**
   * @param {string} session
   * @param {number | null} sinceS
   * @returns {bigint}
   */
  paidSince(session, sinceS) {
    let sum = 0n;
    for (const { atS, minor } of this.#credits.get(session) ?? []) {
      if (sinceS === null || atS >= Math.floor(sinceS)) sum += minor;
    }
    return sum;
  }
}

/**
 * @typedef {object} ReceiptHandlerOptions
 * @property {import('./verifier.js').Verifier} [verifier]  a verifier from `createVerifier`; or give
 *   `keys`, `issuer`, `origin` and `payees` and one is made
 * @property {import('./keys.js').KeySet} [keys]  the issuer's public keys
 * @property {string} [issuer]  the Trickle service you trust, e.g. "https://trickle.example"
 * @property {string} [origin]  your site's origin (the receipts' `aud`), e.g. "https://blog.example"
 * @property {string[]} [payees]  the payment pointers you accept
 * @property {number} [leewayS]  clock skew allowed by the verifier made here (default 60)
 * @property {(req: import('node:http').IncomingMessage) => string | null | undefined | Promise<string | null | undefined>} sessionOf
 *   Your visitor session id for a request (e.g. from your session cookie); null when there is none.
 * @property {SiteStore} [store]  default: a new `MemorySiteStore`
 * @property {string} [currency]  the asset credited (default "USD"); receipts in another are `wrong_asset`
 * @property {number} [scale]  its scale (default 9)
 * @property {boolean} [requireBinding]  default true: a receipt credits a session only if its `bnd`
 *   equals that session's binding. With false, receipts without `bnd` are accepted too (a receipt
 *   with a `bnd` must still match).
 * @property {number} [maxBodyBytes]  default 524288
 * @property {() => number} [clock]  seconds since the epoch (default `Date.now() / 1000`)
 * @property {(error: unknown) => void} [onError]  told about internal failures (default console.error)
 */

/**
 * @typedef {object} PaidQuery
 * @property {bigint | string} [atLeastMinor]  the threshold in minor units (a bigint or a decimal string); default 1
 * @property {number} [withinSeconds]  count only credits of the last so many seconds; default: all time
 */

/**
 * @typedef {((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>) & ReceiptHandlerMethods} ReceiptHandler
 */

/**
 * @typedef {object} ReceiptHandlerMethods
 * @property {(session: string) => Promise<string>} bindingFor
 *   The binding value of a visitor session (made on first use): render it into the page
 *   (`data-trickle-binding` on the link, or `bridge.setBinding(value)`).
 * @property {(session: string, receipts: unknown[]) => Promise<AcceptAnswer>} accept
 *   The framework-neutral core of the handler: verify and credit `receipts` for `session`.
 * @property {(session: string, query?: {withinSeconds?: number}) => Promise<bigint>} paid
 *   Minor units credited to the session (in the last `withinSeconds` if given).
 * @property {(session: string, query?: PaidQuery) => Promise<boolean>} hasPaid
 *   Whether the session was credited at least `atLeastMinor` (in the last `withinSeconds` if given).
 * @property {SiteStore} store
 */

/**
 * @param {ReceiptHandlerOptions} options
 * @returns {ReceiptHandler}
 */
export function createReceiptHandler(options) {
  const {
    sessionOf, store = new MemorySiteStore(), currency = 'USD', scale = 9, requireBinding = true,
    maxBodyBytes = MAX_BODY_BYTES, clock = () => Date.now() / 1000,
    onError = (/** @type {unknown} */ error) => console.error('trickle receipt handler:', error),
  } = options;
  if (typeof sessionOf !== 'function') throw new TypeError('createReceiptHandler: sessionOf must be a function (req) => session id');
  if (typeof currency !== 'string' || currency === '') throw new TypeError(`createReceiptHandler: currency must be an asset code, got ${JSON.stringify(currency)}`);
  if (!Number.isSafeInteger(scale) || scale < 0 || scale > 18) throw new TypeError(`createReceiptHandler: scale must be an integer 0..18, got ${scale}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new TypeError(`createReceiptHandler: maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  const verifier = siteVerifier(options, clock);

  /** @param {string} session */
  async function bindingFor(session) {
    requireSession(session);
    const binding = (await store.getBinding(session)) ?? (await store.setBindingIfAbsent(session, randomBinding()));
    if (typeof binding !== 'string' || !BINDING_PATTERN.test(binding)) {
      throw new TypeError(`the store returned an unusable binding for a session: expected 1-256 printable ASCII characters`);
    }
    return binding;
  }

  /**
   * @param {string} session
   * @param {unknown} token
   * @param {string} binding
   * @returns {Promise<ReceiptResult>}
   */
  async function acceptOne(session, token, binding) {
    try {
      const receipt = await verifier.verify(token, { binding: requireBinding ? binding : null });
      if (!requireBinding && receipt.bnd !== null && receipt.bnd !== binding) {
        throw new ReceiptError('binding_mismatch', `expected bnd ${JSON.stringify(binding)} or none, got ${JSON.stringify(receipt.bnd)}`);
      }
      if (receipt.cur !== currency || receipt.scale !== scale) {
        return { code: 'wrong_asset', message: `expected ${currency} at scale ${scale}, got ${receipt.cur} at scale ${receipt.scale}` };
      }
      // The per-sid increase rule of credits.js, over a store that also checks who owns the stream.
      let foreign = false;
      const atS = clock();
      const tracker = new CreditTracker({
        async advance(sid, tot) {
          const previous = await store.advance(session, sid, tot, atS);
          if (previous !== null) return previous;
          foreign = true;
          return tot; // nothing to credit
        },
      });
      const credited = await tracker.credit(receipt);
      if (foreign) return { code: 'session_mismatch', message: 'this stream was credited to another visitor session' };
      return { code: 'ok', credited: credited.toString() };
    } catch (error) {
      if (error instanceof ReceiptError) return { code: error.code, message: error.message };
      throw error;
    }
  }

  /**
   * @param {string} session
   * @param {unknown[]} receipts
   * @returns {Promise<AcceptAnswer>}
   */
  async function accept(session, receipts) {
    requireSession(session);
    const binding = await bindingFor(session);
    /** @type {ReceiptResult[]} */
    const results = [];
    // One after another, so the receipts of one stream are credited in the order sent.
    for (const token of receipts) results.push(await acceptOne(session, token, binding));
    const total = await store.paidSince(session, null);
    return { results, paid: { total: total.toString(), currency, scale } };
  }

  /**
   * @param {string} session
   * @param {{withinSeconds?: number}} [query]
   */
  async function paid(session, { withinSeconds } = {}) {
    requireSession(session);
    if (withinSeconds !== undefined && !(typeof withinSeconds === 'number' && withinSeconds >= 0 && Number.isFinite(withinSeconds))) {
      throw new TypeError(`withinSeconds: expected a non-negative number, got ${withinSeconds}`);
    }
    return store.paidSince(session, withinSeconds === undefined ? null : clock() - withinSeconds);
  }

  /**
   * @param {string} session
   * @param {PaidQuery} [query]
   */
  async function hasPaid(session, { atLeastMinor = 1n, withinSeconds } = {}) {
    let threshold;
    if (typeof atLeastMinor === 'bigint' && atLeastMinor >= 0n) threshold = atLeastMinor;
    else if (typeof atLeastMinor === 'string' && AMOUNT_PATTERN.test(atLeastMinor)) threshold = BigInt(atLeastMinor);
    else throw new TypeError(`atLeastMinor: expected a non-negative bigint or decimal string of minor units, got ${typeof atLeastMinor} ${String(atLeastMinor)}`);
    return (await paid(session, withinSeconds === undefined ? {} : { withinSeconds })) >= threshold;
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  async function handler(req, res) {
    const endpoint = { sessionOf, maxBodyBytes, validate, onError, failure: 'the receipt handler failed' };
    await handleJsonPost(req, res, endpoint, async (session, /** @type {{receipts: string[]}} */ { receipts }) => (
      { status: 200, value: await accept(session, receipts) }
    ));
  }

  return Object.assign(handler, { bindingFor, accept, paid, hasPaid, store });
}

/**
 * @param {unknown} value
 * @returns {string | null}  what is wrong, or null
 */
function validate(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object {"receipts": [...]}';
  const names = Object.keys(value);
  const extra = names.filter((name) => name !== 'receipts');
  if (extra.length > 0) return `unknown field ${JSON.stringify(extra[0])}`;
  const receipts = /** @type {{receipts?: unknown}} */ (value).receipts;
  if (!Array.isArray(receipts)) return 'receipts: expected an array of strings';
  if (receipts.length > MAX_RECEIPTS_PER_REQUEST) return `receipts: expected at most ${MAX_RECEIPTS_PER_REQUEST}, got ${receipts.length}`;
  const index = receipts.findIndex((item) => typeof item !== 'string');
  if (index >= 0) return `receipts[${index}]: expected a string, got ${receipts[index] === null ? 'null' : typeof receipts[index]}`;
  return null;
}

/** 128 random bits, base64url: a binding value that says nothing about the visitor. */
function randomBinding() {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Every code that can appear in `results[i].code`. */
export const RESULT_CODES = Object.freeze(['ok', ...RECEIPT_ERROR_CODES, 'wrong_asset', 'session_mismatch']);
