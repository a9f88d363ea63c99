// Card top-ups, the pure parts (docs/funding.md): the service's answers checked field by field,
// the Stripe page's URL checked before a tab opens it, and what the popup says about a top-up.
// No browser APIs here.

import { isMinor } from './amounts.js';
import { formatMoney } from './format.js';

/** The states of a card top-up, as the service names them. */
export const TOPUP_STATES = Object.freeze(['pending', 'credited', 'failed', 'refunded', 'disputed']);
const CURRENCY = /^[A-Z0-9]{3,12}$/;
const MAX_URL = 2048;

/**
 * @typedef {{currency: string, scale: number, presets: string[], min: string, max: string}} CardOptions
 * @typedef {{card: CardOptions | null, frozen: boolean}} TopupOptions
 * @typedef {{id: number, state: string, amount: string, currency: string, scale: number,
 *   checkoutUrl: string | null, failureReason: string | null}} Topup
 */

export class TopupAnswerError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'TopupAnswerError';
    this.code = 'bad_response';
  }
}

/** @param {unknown} value @returns {value is Record<string, any>} */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param {unknown} value @param {string} name @returns {number} */
function scaleOf(value, name) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 18) {
    throw new TopupAnswerError(`${name} is not a scale`);
  }
  return value;
}

/** @param {unknown} value @param {string} name @returns {string} */
function minor(value, name) {
  if (!isMinor(value)) throw new TopupAnswerError(`${name} is not an amount`);
  return value;
}

/** @param {unknown} value @param {string} name @returns {string} */
function currencyOf(value, name) {
  if (typeof value !== 'string' || !CURRENCY.test(value)) throw new TopupAnswerError(`${name} is not a currency`);
  return value;
}

/**
 * `GET /api/v1/topups/options` → how the reader can top up by card (`card: null`: not at all).
 * @param {unknown} raw
 * @returns {TopupOptions}
 */
export function parseOptions(raw) {
  if (!isObject(raw) || typeof raw.account_frozen !== 'boolean') throw new TopupAnswerError('not top-up options');
  if (raw.card === null) return { card: null, frozen: raw.account_frozen };
  const card = raw.card;
  if (!isObject(card) || !Array.isArray(card.presets) || card.presets.length > 6) {
    throw new TopupAnswerError('card options without presets');
  }
  return {
    card: {
      currency: currencyOf(card.currency, 'currency'),
      scale: scaleOf(card.scale, 'scale'),
      presets: card.presets.map((p, i) => minor(p, `presets[${i}]`)),
      min: minor(card.min_amount_minor, 'min_amount_minor'),
      max: minor(card.max_amount_minor, 'max_amount_minor'),
    },
    frozen: raw.account_frozen,
  };
}

/**
 * Stripe's payment page, as the service named it: an https URL (http only on this machine, for
 * the tests' stand-in), so that the tab opens nothing else.
 * @param {unknown} value
 * @returns {string}
 */
export function checkoutUrl(value) {
  if (typeof value !== 'string' || value.length > MAX_URL) throw new TopupAnswerError('no payment page');
  /** @type {URL} */
  let url;
  try {
    url = new URL(value);
  } catch {
    throw new TopupAnswerError('the payment page is not a URL');
  }
  const local = url.hostname === '127.0.0.1' || url.hostname === 'localhost';
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && local)) || url.username || url.password) {
    throw new TopupAnswerError('the payment page is not an https URL');
  }
  return url.href;
}

/**
 * A top-up as the service describes it (`POST /api/v1/topups`, `GET /api/v1/topups/{id}`).
 * @param {unknown} raw
 * @returns {Topup}
 */
export function parseTopup(raw) {
  if (!isObject(raw) || !Number.isSafeInteger(raw.id) || raw.id < 1) throw new TopupAnswerError('not a top-up');
  if (!TOPUP_STATES.includes(raw.state)) throw new TopupAnswerError('unknown top-up state');
  const reason = raw.failure_reason;
  if (reason !== null && (typeof reason !== 'string' || reason.length > 200)) throw new TopupAnswerError('bad failure reason');
  return {
    id: raw.id,
    state: raw.state,
    amount: minor(raw.amount_minor, 'amount_minor'),
    currency: currencyOf(raw.currency, 'currency'),
    scale: scaleOf(raw.scale, 'scale'),
    checkoutUrl: raw.checkout_url === null ? null : checkoutUrl(raw.checkout_url),
    failureReason: reason,
  };
}

/** Why a top-up failed, in words (the service's `failure_reason`, docs/api.md). @type {Record<string, string>} */
const FAILURES = {
  expired: 'the payment page expired before you paid',
  payment_failed: 'the payment failed',
};

/** Why a card was declined (Stripe's decline codes while the top-up is pending). @type {Record<string, string>} */
const DECLINES = {
  card_declined: 'your bank declined the card',
  insufficient_funds: 'the card has not enough funds',
  expired_card: 'the card has expired',
  incorrect_cvc: 'the security code was not right',
  processing_error: 'the card could not be charged',
};

/**
 * What the popup says about a top-up.
 * @param {Topup} topup
 * @param {string} [locale]
 * @returns {string}
 */
export function topupText(topup, locale) {
  const amount = formatMoney(topup.amount, topup, locale);
  switch (topup.state) {
    case 'pending':
      return topup.failureReason
        ? `Top-up of ${amount}: ${DECLINES[topup.failureReason] ?? 'the last attempt was declined'}. Try again on Stripe's page.`
        : `Top-up of ${amount}: waiting for your payment at Stripe…`;
    case 'credited':
      return `Credited ${amount}.`;
    case 'failed':
      return `Top-up of ${amount} not credited: ${FAILURES[topup.failureReason ?? ''] ?? 'the payment did not go through'}.`;
    case 'refunded':
      return `Top-up of ${amount} refunded to your card.`;
    default:
      return `Top-up of ${amount} disputed at your bank: your spending is on hold.`;
  }
}

/**
 * Whether the popup should keep asking about this top-up.
 * @param {Topup | null} topup
 */
export function isPending(topup) {
  return topup !== null && topup.state === 'pending';
}
