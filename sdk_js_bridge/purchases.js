/**
 * The site purchase endpoint for Node sites (one-time payments, docs/payments.md): a `node:http`
 * handler that takes a one-time receipt for one of the site's orders, checks it against the site's
 * own price, and records the purchase once per receipt (README.md "One-time payments").
 */

import { RECEIPT_ERROR_CODES, ReceiptError } from './errors.js';
import { handleJsonPost, requireSession, siteVerifier } from './http.js';

/** Largest purchase request body in bytes: one receipt (at most 4096 bytes) and an order reference. */
export const MAX_PURCHASE_BODY_BYTES = 16384;

const ORDER_REF_PATTERN = /^[\x20-\x7e]{1,128}$/;
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)$/;
const CURRENCY_PATTERN = /^[A-Z0-9]{3,12}$/;
const MAX_AMOUNT_EXCLUSIVE = 2n ** 63n;

/**
 * Why a receipt buys nothing, beyond the verifier's own codes, with the HTTP status the endpoint
 * answers. The order of the entries is the order the checks run in.
 */
const PURCHASE_RULES = /** @type {const} */ ({
  not_one_time: 422, // the receipt is not a one-time payment (otp missing or false)
  order_mismatch: 422, // its ord is not the order_ref asked for
  unknown_order: 404, // priceOf(order_ref) knows no such order
  wrong_asset: 422, // its cur/scale are not the price's
  amount_too_low: 422, // amt is below the price
  already_used: 409, // this receipt (its sid) already bought something for another visitor session
});

/**
 * Every `error.code` of the purchase endpoint: the verifier's codes (HTTP 422), the purchase rules,
 * and the request's own (`method_not_allowed` 405, `unsupported_media_type` 415, `unauthenticated`
 * 401, `body_too_large` 413, `malformed_json` 400, `validation_failed` 422, `internal_error` 500).
 */
export const PURCHASE_ERROR_CODES = Object.freeze([
  ...RECEIPT_ERROR_CODES,
  .../** @type {(keyof typeof PURCHASE_RULES)[]} */ (Object.keys(PURCHASE_RULES)),
  'method_not_allowed', 'unsupported_media_type', 'unauthenticated', 'body_too_large', 'malformed_json',
  'validation_failed', 'internal_error',
]);

/** @typedef {import('./errors.js').ReceiptErrorCode | keyof typeof PURCHASE_RULES} PurchaseErrorCode */

/** A receipt that buys nothing: `code` names the broken rule, `status` is the HTTP status to answer. */
export class PurchaseError extends Error {
  /**
   * @param {PurchaseErrorCode} code
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'PurchaseError';
    /** @readonly */
    this.code = code;
    /** @readonly */
    this.status = Object.hasOwn(PURCHASE_RULES, code) ? PURCHASE_RULES[/** @type {keyof typeof PURCHASE_RULES} */ (code)] : 422;
  }
}

/**
 * A recorded purchase. Money is a `bigint` of minor units.
 * @typedef {Readonly<{session: string, orderRef: string, sid: string, jti: string,
 *   amountMinor: bigint, currency: string, scale: number, atS: number}>} Purchase
 */

/**
 * The endpoint's answer to a purchase that went through (also for the same receipt sent again by
 * the same visitor session: the existing purchase, nothing bought twice).
 * @typedef {{code: 'ok', order_ref: string, amount_minor: string, currency: string, scale: number}} PurchaseAnswer
 */

/**
 * The site's price of an order: minor units (a `bigint` or a decimal string, never a `number`) of
 * `currency` at `scale` (default: the handler's `scale`).
 * @typedef {{amountMinor: bigint | string, currency: string, scale?: number}} Price
 */

/**
 * Where the purchase handler records purchases. With several processes, back it with your database:
 * `record` must be atomic (a unique index on `sid`, inserted in one transaction).
 * @typedef {object} PurchaseStore
 * @property {(purchase: Purchase) => RecordOutcome | Promise<RecordOutcome>} record
 *   Atomically: if no purchase has `purchase.sid`, store it and return `{outcome: 'recorded', purchase}`;
 *   if one has it for the same session and order, change nothing and return `{outcome: 'existing',
 *   purchase: <the stored one>}`; otherwise change nothing and return `{outcome: 'used'}`.
 * @property {(session: string, orderRef: string) => boolean | Promise<boolean>} hasPurchased
 *   Whether the session has a recorded purchase of the order.
 */

/** @typedef {{outcome: 'recorded' | 'existing', purchase: Purchase} | {outcome: 'used'}} RecordOutcome */

/** A `PurchaseStore` in process memory: right for one process and for tests; lost on restart. */
export class MemoryPurchaseStore {
  /** @type {Map<string, Purchase>} by sid */ #bySid = new Map();
  /** @type {Map<string, Set<string>>} order refs bought, by session */ #bySession = new Map();

  /**
   * @param {Purchase} purchase
   * @returns {RecordOutcome}
   */
  record(purchase) {
    const existing = this.#bySid.get(purchase.sid);
    if (existing !== undefined) {
      const same = existing.session === purchase.session && existing.orderRef === purchase.orderRef;
      return same ? { outcome: 'existing', purchase: existing } : { outcome: 'used' };
    }
    const stored = Object.freeze({ ...purchase });
    this.#bySid.set(purchase.sid, stored);
    const orders = this.#bySession.get(purchase.session) ?? new Set();
    orders.add(purchase.orderRef);
    this.#bySession.set(purchase.session, orders);
    return { outcome: 'recorded', purchase: stored };
  }

  /**
   * @param {string} session
   * @param {string} orderRef
   */
  hasPurchased(session, orderRef) {
    return this.#bySession.get(session)?.has(orderRef) ?? false;
  }
}

/**
 * @typedef {object} PurchaseHandlerOptions
 * @property {import('./verifier.js').Verifier} [verifier]  a verifier from `createVerifier`; or give
 *   `keys`, `issuer`, `origin` and `payees` and one is made
 * @property {import('./keys.js').KeySet} [keys]  the issuer's public keys
 * @property {string} [issuer]  the Trickle service you trust
 * @property {string} [origin]  your site's origin (the receipts' `aud`)
 * @property {string[]} [payees]  the payment pointers you accept
 * @property {number} [leewayS]  clock skew allowed by the verifier made here (default 60)
 * @property {(orderRef: string) => Price | null | undefined | Promise<Price | null | undefined>} priceOf
 *   Your catalogue: the price of an order reference, or null when you sell no such thing. The price
 *   always comes from here, never from the client.
 * @property {(req: import('node:http').IncomingMessage) => string | null | undefined | Promise<string | null | undefined>} sessionOf
 *   Your visitor session id for a request (e.g. from your session cookie); null when there is none.
 * @property {(session: string) => string | null | Promise<string | null>} [bindingOf]
 *   The binding value you gave this visitor's page (e.g. `receiptHandler.bindingFor`): when it
 *   returns a string, the receipt's `bnd` must equal it (`binding_mismatch`), so a receipt taken from
 *   one visitor's page buys nothing for another. Without it, `bnd` is not checked.
 * @property {PurchaseStore} [store]  default: a new `MemoryPurchaseStore`
 * @property {number} [scale]  the scale of prices that do not name one (default 9)
 * @property {number} [maxBodyBytes]  default 16384
 * @property {() => number} [clock]  seconds since the epoch (default `Date.now() / 1000`)
 * @property {(error: unknown) => void} [onError]  told about internal failures (default console.error)
 */

/**
 * @typedef {object} PurchaseHandlerMethods
 * @property {(session: string, receipt: unknown, orderRef: string) => Promise<PurchaseAnswer>} purchase
 *   The framework-neutral core: resolves with the answer or rejects with `PurchaseError`.
 * @property {(session: string, orderRef: string) => Promise<boolean>} hasPurchased
 *   Whether the visitor session bought the order: what your server checks before it serves the item.
 * @property {PurchaseStore} store
 */

/**
 * @typedef {((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>) & PurchaseHandlerMethods} PurchaseHandler
 */

/**
 * The site purchase endpoint: `POST {"receipt": "<jws>", "order_ref": "<ref>"}` → `200 {"code": "ok",
 * "order_ref", "amount_minor", "currency", "scale"}` or `{"error": {"code", "message"}}`.
 * @param {PurchaseHandlerOptions} options
 * @returns {PurchaseHandler}
 */
export function createPurchaseHandler(options) {
  const {
    priceOf, sessionOf, bindingOf, store = new MemoryPurchaseStore(), scale: defaultScale = 9,
    maxBodyBytes = MAX_PURCHASE_BODY_BYTES, clock = () => Date.now() / 1000,
    onError = (/** @type {unknown} */ error) => console.error('trickle purchase handler:', error),
  } = options;
  if (typeof priceOf !== 'function') throw new TypeError('createPurchaseHandler: priceOf must be a function (orderRef) => {amountMinor, currency} | null');
  if (typeof sessionOf !== 'function') throw new TypeError('createPurchaseHandler: sessionOf must be a function (req) => session id');
  if (bindingOf !== undefined && typeof bindingOf !== 'function') throw new TypeError('createPurchaseHandler: bindingOf must be a function (session) => binding | null');
  if (!isScale(defaultScale)) throw new TypeError(`createPurchaseHandler: scale must be an integer 0..18, got ${defaultScale}`);
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) throw new TypeError(`createPurchaseHandler: maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  const verifier = siteVerifier(options, clock);

  /**
   * @param {string} session
   * @param {unknown} token
   * @param {string} orderRef
   * @returns {Promise<PurchaseAnswer>}
   */
  async function purchase(session, token, orderRef) {
    requireSession(session);
    if (typeof orderRef !== 'string' || !ORDER_REF_PATTERN.test(orderRef)) {
      throw new TypeError(`purchase: expected orderRef as 1-128 printable ASCII characters, got ${JSON.stringify(orderRef)}`);
    }
    const binding = bindingOf === undefined ? null : await bindingOf(session);
    if (binding !== null && typeof binding !== 'string') throw new TypeError('bindingOf returned neither a string nor null');
    let receipt;
    try {
      receipt = await verifier.verify(token, { binding });
    } catch (error) {
      if (error instanceof ReceiptError) throw new PurchaseError(error.code, error.message, { cause: error });
      throw error;
    }
    if (!receipt.oneTime) throw new PurchaseError('not_one_time', 'expected a one-time receipt (otp true), got a streamed one');
    if (receipt.orderRef !== orderRef) {
      throw new PurchaseError('order_mismatch', `expected ord ${JSON.stringify(orderRef)}, got ${receipt.orderRef === null ? 'none' : JSON.stringify(receipt.orderRef)}`);
    }
    const price = checkPrice(await priceOf(orderRef), defaultScale);
    if (price === null) throw new PurchaseError('unknown_order', `expected an order this site sells, got ${JSON.stringify(orderRef)}`);
    if (receipt.cur !== price.currency || receipt.scale !== price.scale) {
      throw new PurchaseError('wrong_asset', `expected ${price.currency} at scale ${price.scale}, got ${receipt.cur} at scale ${receipt.scale}`);
    }
    if (receipt.amt < price.minor) {
      throw new PurchaseError('amount_too_low', `expected at least ${price.minor} minor units, got ${receipt.amt}`);
    }
    const outcome = await store.record(Object.freeze({
      session, orderRef, sid: receipt.sid, jti: receipt.jti, amountMinor: receipt.amt,
      currency: receipt.cur, scale: receipt.scale, atS: clock(),
    }));
    if (outcome.outcome === 'used') {
      throw new PurchaseError('already_used', 'this receipt already bought something for another visitor session');
    }
    const bought = outcome.purchase;
    return {
      code: 'ok', order_ref: bought.orderRef, amount_minor: bought.amountMinor.toString(),
      currency: bought.currency, scale: bought.scale,
    };
  }

  /**
   * @param {string} session
   * @param {string} orderRef
   */
  async function hasPurchased(session, orderRef) {
    requireSession(session);
    if (typeof orderRef !== 'string') throw new TypeError(`hasPurchased: expected orderRef as a string, got ${typeof orderRef}`);
    return (await store.hasPurchased(session, orderRef)) === true;
  }

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   */
  async function handler(req, res) {
    const endpoint = { sessionOf, maxBodyBytes, validate, onError, failure: 'the purchase handler failed' };
    await handleJsonPost(req, res, endpoint, async (session, /** @type {{receipt: string, order_ref: string}} */ body) => {
      try {
        return { status: 200, value: await purchase(session, body.receipt, body.order_ref) };
      } catch (error) {
        if (error instanceof PurchaseError) return { status: error.status, value: { error: { code: error.code, message: error.message } } };
        throw error;
      }
    });
  }

  return Object.assign(handler, { purchase, hasPurchased, store });
}

/**
 * The body must be exactly `{"receipt": <string>, "order_ref": <1-128 printable ASCII>}`.
 * @param {unknown} value
 * @returns {string | null}  what is wrong, or null
 */
function validate(value) {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'expected a JSON object {"receipt": "...", "order_ref": "..."}';
  const extra = Object.keys(value).filter((name) => name !== 'receipt' && name !== 'order_ref');
  if (extra.length > 0) return `unknown field ${JSON.stringify(extra[0])}`;
  const { receipt, order_ref: orderRef } = /** @type {{receipt?: unknown, order_ref?: unknown}} */ (value);
  if (typeof receipt !== 'string') return 'receipt: expected a string (the one-time receipt)';
  if (typeof orderRef !== 'string' || !ORDER_REF_PATTERN.test(orderRef)) return 'order_ref: expected 1-128 printable ASCII characters';
  return null;
}

/**
 * A price from `priceOf`, checked: a wrong one is a bug in the site (an internal error), not the client's.
 * @param {unknown} value
 * @param {number} defaultScale
 * @returns {{minor: bigint, currency: string, scale: number} | null}
 */
function checkPrice(value, defaultScale) {
  if (value === null || value === undefined) return null;
  const price = /** @type {{amountMinor?: unknown, currency?: unknown, scale?: unknown}} */ (value);
  let minor;
  if (typeof price.amountMinor === 'bigint') minor = price.amountMinor;
  else if (typeof price.amountMinor === 'string' && AMOUNT_PATTERN.test(price.amountMinor)) minor = BigInt(price.amountMinor);
  else throw new TypeError(`priceOf: expected amountMinor as a bigint or decimal string of minor units (never a number), got ${typeof price.amountMinor}`);
  if (minor <= 0n || minor >= MAX_AMOUNT_EXCLUSIVE) throw new TypeError(`priceOf: expected amountMinor in 1..2^63-1, got ${minor}`);
  if (typeof price.currency !== 'string' || !CURRENCY_PATTERN.test(price.currency)) {
    throw new TypeError(`priceOf: expected currency as an asset code like "USD", got ${JSON.stringify(price.currency)}`);
  }
  const scale = price.scale ?? defaultScale;
  if (!isScale(scale)) throw new TypeError(`priceOf: expected scale as an integer 0..18, got ${String(scale)}`);
  return { minor, currency: price.currency, scale };
}

/**
 * @param {unknown} value
 * @returns {value is number}
 */
function isScale(value) {
  return Number.isSafeInteger(value) && /** @type {number} */ (value) >= 0 && /** @type {number} */ (value) <= 18;
}
