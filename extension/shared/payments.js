// One-time payments, the pure parts: the page's `payment-request` (PAYMENT-CONTRACT: checked
// field by field), amounts typed by the reader, the auto-approve decision (per-site limit and a
// daily cap of auto-approved spending) and the codes the page is told. No browser APIs here.

import { AmountError, MAX_MINOR, majorToMinor } from './amounts.js';
import { validPointer } from './links.js';

/** The codes a failed `payment-result` may carry (docs/extension.md, the page contract). */
export const RESULT_CODES = Object.freeze([
  'declined',
  'insufficient_funds',
  'budget_exhausted',
  'site_disabled',
  'signed_out',
  'invalid_request',
  'service_unreachable',
  'payee_not_found',
  'busy',
]);

/** The daily cap of auto-approved spending when the reader set none, in major units. */
export const DEFAULT_DAILY_CAP = '1.00';

export const REQUEST_ID = /^[A-Za-z0-9_-]{1,64}$/;
const AMOUNT = /^(0|[1-9][0-9]*)(\.[0-9]{1,18})?$/;
const CURRENCY = /^[A-Z0-9]{3,12}$/;
const ORDER_REF = /^[\x20-\x7e]{1,128}$/;
const BINDING = /^[\x20-\x7e]{1,256}$/;
const MAX_DESCRIPTION = 200;

/**
 * A payment request as the extension keeps it (binding null when the page gave none).
 * @typedef {{id: string, amount: string, currency: string, description: string, orderRef: string,
 *   paymentPointer: string, binding: string | null}} PaymentRequest
 */

export class RequestError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'RequestError';
    this.code = 'invalid_request';
  }
}

/** @param {unknown} value @returns {value is Record<string, unknown>} */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Check the request fields (everything but `source` and `type`). Strict: unknown fields, wrong
 * types, lengths and forms are refused with a RequestError naming the field.
 * @param {unknown} raw
 * @param {{envelope?: boolean}} [options]  envelope: raw is the page's whole post, with source/type
 * @returns {PaymentRequest}
 */
export function parsePaymentRequest(raw, options = {}) {
  if (!isObject(raw)) throw new RequestError('a payment request must be an object');
  const allowed = ['id', 'amount', 'currency', 'description', 'orderRef', 'paymentPointer', 'binding'];
  if (options.envelope) {
    if (raw.source !== 'trickle-page' || raw.type !== 'payment-request') throw new RequestError('not a payment request');
    allowed.push('source', 'type');
  }
  for (const key of Object.keys(raw)) {
    if (!allowed.includes(key)) throw new RequestError(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  }
  const { id, amount, currency, description, orderRef, paymentPointer, binding } = raw;
  if (typeof id !== 'string' || !REQUEST_ID.test(id)) throw new RequestError('id: 1-64 characters A-Z a-z 0-9 _ -');
  if (typeof amount !== 'string' || amount.length > 40 || !AMOUNT.test(amount) || !/[1-9]/.test(amount)) {
    throw new RequestError('amount: a positive decimal string in major units, like "0.25"');
  }
  if (typeof currency !== 'string' || !CURRENCY.test(currency)) throw new RequestError('currency: an asset code like "USD"');
  if (description !== undefined && typeof description !== 'string') throw new RequestError('description: a string');
  const text = description ?? '';
  if ([...text].length > MAX_DESCRIPTION) throw new RequestError(`description: at most ${MAX_DESCRIPTION} characters`);
  if (typeof orderRef !== 'string' || !ORDER_REF.test(orderRef)) throw new RequestError('orderRef: 1-128 printable ASCII characters');
  const pointer = validPointer(paymentPointer);
  if (pointer === null) throw new RequestError('paymentPointer: an absolute http(s) URL of at most 300 characters');
  if (binding !== undefined && binding !== null && (typeof binding !== 'string' || !BINDING.test(binding))) {
    throw new RequestError('binding: 1-256 printable ASCII characters');
  }
  return {
    id,
    amount,
    currency,
    description: text,
    orderRef,
    paymentPointer: pointer,
    binding: typeof binding === 'string' ? binding : null,
  };
}

/**
 * The request's amount in minor units at the service's scale; refuses more fraction digits than
 * the scale has, zero, and amounts of 2^63 minor units or more.
 * @param {string} amount  major units, already of the request's form
 * @param {number} scale
 * @returns {string}
 */
export function requestMinor(amount, scale) {
  const minor = majorToMinor(amount, scale);
  if (BigInt(minor) <= 0n) throw new AmountError('the amount must be above zero', 'zero');
  return minor;
}

/**
 * An amount the reader typed (tip, limit, cap) → minor units. Blank → null when `allowBlank`.
 * A tip must be above zero; a limit or a cap of zero means "none".
 * @param {string} text
 * @param {number} scale
 * @param {{allowBlank?: boolean, positive?: boolean}} [options]
 * @returns {string | null}
 */
export function readerAmount(text, scale, options = {}) {
  const trimmed = String(text).trim();
  if (trimmed === '') {
    if (options.allowBlank) return null;
    throw new AmountError('enter an amount, like 0.50', 'empty');
  }
  const minor = majorToMinor(trimmed, scale);
  if (options.positive && BigInt(minor) <= 0n) throw new AmountError('the amount must be above zero', 'zero');
  return minor;
}

/**
 * The reader's local calendar day, "YYYY-MM-DD": the daily cap starts again at local midnight.
 * @param {Date} date
 */
export function dayKey(date) {
  const y = String(date.getFullYear()).padStart(4, '0');
  const m = String(date.getMonth() + 1).padStart(2, '0');
  const d = String(date.getDate()).padStart(2, '0');
  return `${y}-${m}-${d}`;
}

/** @typedef {{day: string, minor: string}} DailySpent */

/**
 * What was auto-approved on `today` (a record of another day counts as nothing).
 * @param {DailySpent | null | undefined} spent
 * @param {string} today
 * @returns {bigint}
 */
export function spentOn(spent, today) {
  if (!spent || spent.day !== today || typeof spent.minor !== 'string' || !/^[0-9]{1,19}$/.test(spent.minor)) return 0n;
  return BigInt(spent.minor);
}

/**
 * Add (or, with a negative delta, give back) auto-approved spending of `today`.
 * @param {DailySpent | null | undefined} spent
 * @param {string} today
 * @param {bigint} delta
 * @returns {DailySpent}
 */
export function addSpent(spent, today, delta) {
  const total = spentOn(spent, today) + delta;
  return { day: today, minor: (total < 0n ? 0n : total).toString() };
}

/**
 * @typedef {object} AutoInput
 * @property {string} amountMinor  the payment, minor units
 * @property {string | null} limitMinor  the site's auto-approve limit, null = none
 * @property {string} capMinor  the daily cap of auto-approved spending
 * @property {DailySpent | null | undefined} spent  auto-approved spending so far
 * @property {string} today  dayKey of now
 */

/**
 * Whether a payment is approved without asking: the site has a limit, the amount is at most
 * that limit, and today's auto-approved spending plus the amount stays within the daily cap.
 * Otherwise the reader is asked (never refused for it).
 * @param {AutoInput} input
 * @returns {{auto: boolean, reason: 'ok' | 'no_limit' | 'over_limit' | 'over_cap'}}
 */
export function autoApprove(input) {
  const amount = BigInt(input.amountMinor);
  if (input.limitMinor === null || BigInt(input.limitMinor) <= 0n) return { auto: false, reason: 'no_limit' };
  if (amount > BigInt(input.limitMinor)) return { auto: false, reason: 'over_limit' };
  const after = spentOn(input.spent, input.today) + amount;
  if (after > BigInt(input.capMinor) || after > MAX_MINOR) return { auto: false, reason: 'over_cap' };
  return { auto: true, reason: 'ok' };
}

/**
 * The page's code for a failure of the payment call (the service's or the extension's code).
 * @param {string} code
 * @returns {string}
 */
export function resultCode(code) {
  switch (code) {
    case 'insufficient_funds':
    case 'budget_exhausted':
    case 'site_disabled':
    case 'payee_not_found':
    case 'signed_out':
    case 'service_unreachable':
    case 'declined':
    case 'busy':
    case 'invalid_request':
      return code;
    case 'unauthenticated':
    case 'session_origin_mismatch':
      return 'signed_out';
    case 'account_frozen': // the reader's spending is on hold: to the site, a decline
      return 'declined';
    case 'bad_response':
    case 'rate_limited':
    case 'internal':
      return 'service_unreachable';
    default:
      // validation_failed, invalid_amount, currency_mismatch, idempotency_key_reused, …
      return 'invalid_request';
  }
}

/**
 * Whether a failed payment call may be sent again with the same Idempotency-Key: no answer at
 * all (network, timeout) or a server-side failure. A retry with the same key never charges twice.
 * @param {{code?: unknown, status?: unknown}} error
 */
export function retryable(error) {
  const status = typeof error.status === 'number' ? error.status : -1;
  return status === 0 || status >= 500;
}

/** Random reference for a tip: `tip-` and 32 hex digits (128 random bits). */
export function tipOrderRef() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let text = '';
  for (const b of bytes) text += b.toString(16).padStart(2, '0');
  return `tip-${text}`;
}
