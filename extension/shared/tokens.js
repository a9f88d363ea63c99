// Private-payment tokens, the pure parts (docs/tokens.md): the service's published token keys
// (`/.well-known/trickle-token-keys`) and its issuance answers checked field by field, tokens on
// the wire ({epoch, input, output}, base64url), which tokens to spend or refund, and how many
// tokens a price takes. No browser APIs but crypto.getRandomValues.

import { isMinor } from './amounts.js';
import { ELEMENT_BYTES, OUTPUT_BYTES, PROOF_BYTES, TOKEN_INPUT_BYTES } from './voprf.js';

/** The most tokens the wallet holds: what a lost browser profile loses at most (docs/extension.md). */
export const DEFAULT_RESERVE = 20;
/** The least and the most a reader may set as the reserve (options page). */
export const MIN_RESERVE = 20;
export const MAX_RESERVE = 1000;
/**
 * Every issuance asks for this many tokens, for every reader, whatever their reserve (a batch size
 * of one's own would tell the service whose batch it is); a refill asks for as many batches as it
 * takes. Below the service's limit (`TRICKLE_TOKEN_BATCH_MAX`, 32 by default).
 */
export const BATCH_SIZE = 10;

/**
 * A token key as the service publishes it (times in ms since the epoch).
 * @typedef {{currency: string, scale: number, epoch: number, valueMinor: string, publicKey: Uint8Array,
 *   issueFrom: number, issueUntil: number, spendUntil: number}} TokenKey
 */
/** A token the wallet holds, as stored and as sent: base64url strings. @typedef {{epoch: number, input: string, output: string}} Token */

export class TokenError extends Error {
  /**
   * @param {string} code  bad_response (the service's answer is malformed), or a wallet code
   * @param {string} message
   */
  constructor(code, message) {
    super(message);
    this.name = 'TokenError';
    this.code = code;
  }
}

/** @param {Uint8Array} bytes */
export function toB64url(bytes) {
  let text = '';
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const B64URL = /^[A-Za-z0-9_-]*$/;

/**
 * Canonical unpadded base64url → bytes; null when it is not (or not `length` bytes).
 * @param {unknown} text
 * @param {number} [length]
 */
export function fromB64url(text, length) {
  if (typeof text !== 'string' || !B64URL.test(text) || text.length % 4 === 1) return null;
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  if (toB64url(bytes) !== text) return null; // non-canonical trailing bits
  if (length !== undefined && bytes.length !== length) return null;
  return bytes;
}

/** @param {unknown} value @returns {value is Record<string, unknown>} */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** @param {unknown} value @param {string} what */
function time(value, what) {
  const ms = typeof value === 'string' ? Date.parse(value) : NaN;
  if (!Number.isFinite(ms)) throw new TokenError('bad_response', `${what} is not an RFC 3339 time`);
  return ms;
}

/** @param {unknown} value @returns {value is number} */
const isEpoch = (value) => typeof value === 'number' && Number.isSafeInteger(value) && value > 0;

/**
 * The key document: every key checked; a malformed key makes the whole document bad (a client
 * must not pick among keys it cannot all read).
 * @param {unknown} raw
 * @returns {TokenKey[]}
 */
export function parseKeyDocument(raw) {
  if (!isObject(raw) || !Array.isArray(raw.keys)) throw new TokenError('bad_response', 'the token key document has no keys');
  return raw.keys.map((k, i) => {
    const what = `keys[${i}]`;
    if (!isObject(k)) throw new TokenError('bad_response', `${what} is not an object`);
    const publicKey = fromB64url(k.public_key, ELEMENT_BYTES);
    if (typeof k.currency !== 'string' || !/^[A-Z0-9]{3,12}$/.test(k.currency)) throw new TokenError('bad_response', `${what}.currency`);
    if (typeof k.scale !== 'number' || !Number.isInteger(k.scale) || k.scale < 0 || k.scale > 18) throw new TokenError('bad_response', `${what}.scale`);
    if (!isEpoch(k.epoch)) throw new TokenError('bad_response', `${what}.epoch`);
    if (!isMinor(k.value_minor) || BigInt(k.value_minor) <= 0n) throw new TokenError('bad_response', `${what}.value_minor`);
    if (!publicKey) throw new TokenError('bad_response', `${what}.public_key is not ${ELEMENT_BYTES} bytes of base64url`);
    return {
      currency: k.currency,
      scale: k.scale,
      epoch: k.epoch,
      valueMinor: k.value_minor,
      publicKey,
      issueFrom: time(k.issue_from, `${what}.issue_from`),
      issueUntil: time(k.issue_until, `${what}.issue_until`),
      spendUntil: time(k.spend_until, `${what}.spend_until`),
    };
  });
}

/**
 * The key that issues now for `currency`, or null.
 * @param {TokenKey[]} keys
 * @param {string} currency
 * @param {number} nowMs
 */
export function issuingKey(keys, currency, nowMs) {
  return keys.find((k) => k.currency === currency && k.issueFrom <= nowMs && nowMs < k.issueUntil) ?? null;
}

/**
 * The published key of one epoch and currency, or null: the only key a batch's proof is checked
 * against.
 * @param {TokenKey[]} keys
 * @param {string} currency
 * @param {number} epoch
 */
export function publishedKey(keys, currency, epoch) {
  return keys.find((k) => k.currency === currency && k.epoch === epoch) ?? null;
}

/**
 * Whether a held token can still be spent: its epoch's key is published for the reader's
 * currency and its spending period has not ended.
 * @param {Token} token
 * @param {TokenKey[]} keys
 * @param {string} currency
 * @param {number} nowMs
 */
export function spendable(token, keys, currency, nowMs) {
  const key = publishedKey(keys, currency, token.epoch);
  return key !== null && nowMs < key.spendUntil;
}

/**
 * The tokens to spend next, all of one epoch (a spend or a payment carries one epoch's tokens):
 * of the oldest epoch that has `count` spendable ones (its spending period ends first), or, with
 * `partial`, up to `count` of the oldest epoch held. Null when there are none to give.
 * @param {Token[]} held
 * @param {number} count
 * @param {TokenKey[]} keys
 * @param {string} currency
 * @param {number} nowMs
 * @param {{partial?: boolean}} [options]
 * @returns {Token[] | null}
 */
export function pickTokens(held, count, keys, currency, nowMs, options = {}) {
  /** @type {Map<number, Token[]>} */
  const byEpoch = new Map();
  for (const t of held) if (spendable(t, keys, currency, nowMs)) byEpoch.set(t.epoch, [...(byEpoch.get(t.epoch) ?? []), t]);
  const epochs = [...byEpoch.keys()].sort((a, b) => a - b);
  for (const epoch of epochs) {
    const tokens = /** @type {Token[]} */ (byEpoch.get(epoch));
    if (tokens.length >= count) return tokens.slice(0, count);
  }
  if (options.partial && epochs.length > 0) return /** @type {Token[]} */ (byEpoch.get(epochs[0]));
  return null;
}

/**
 * Tokens past their spending period (or whose key is no longer published): refunded to the balance.
 * @param {Token[]} held
 * @param {TokenKey[]} keys
 * @param {string} currency
 * @param {number} nowMs
 */
export function expiredTokens(held, keys, currency, nowMs) {
  return held.filter((t) => !spendable(t, keys, currency, nowMs));
}

/**
 * How many tokens a price takes, and what the site gets beyond the price: a price is paid with
 * ceil(price / value) tokens; the remainder (less than one token's value) goes to the site.
 * @param {string} amountMinor
 * @param {string} valueMinor
 * @returns {{count: number, paidMinor: string, remainderMinor: string}}
 */
export function tokensForPrice(amountMinor, valueMinor) {
  const amount = BigInt(amountMinor);
  const value = BigInt(valueMinor);
  if (amount <= 0n || value <= 0n) throw new TokenError('invalid_amount', 'a price and a token value are above zero');
  const count = (amount + value - 1n) / value;
  const paid = count * value;
  return { count: Number(count), paidMinor: paid.toString(), remainderMinor: (paid - amount).toString() };
}

/**
 * The service's issuance answer, checked against what was asked.
 * @param {unknown} raw
 * @param {{currency: string, epoch: number, count: number}} asked
 * @returns {{evaluated: Uint8Array[], proof: Uint8Array, balanceMinor: string | null}}
 */
export function parseIssuance(raw, asked) {
  if (!isObject(raw)) throw new TokenError('bad_response', 'the issuance answer is not an object');
  if (raw.currency !== asked.currency || raw.epoch !== asked.epoch) {
    throw new TokenError('token_key_mismatch', `tokens of ${String(raw.currency)} ${String(raw.epoch)} were given for ${asked.currency} ${asked.epoch}`);
  }
  if (!Array.isArray(raw.evaluated) || raw.evaluated.length !== asked.count) {
    throw new TokenError('token_key_mismatch', `${asked.count} tokens were asked for and ${Array.isArray(raw.evaluated) ? raw.evaluated.length : 0} given`);
  }
  const evaluated = raw.evaluated.map((e, i) => {
    const bytes = fromB64url(e, ELEMENT_BYTES);
    if (!bytes) throw new TokenError('token_key_mismatch', `evaluated element ${i} is not ${ELEMENT_BYTES} bytes`);
    return bytes;
  });
  const proof = fromB64url(raw.proof, PROOF_BYTES);
  if (!proof) throw new TokenError('token_key_mismatch', `the proof is not ${PROOF_BYTES} bytes`);
  return { evaluated, proof, balanceMinor: isMinor(raw.balance_minor) ? raw.balance_minor : null };
}

/**
 * A token as held: checked to be of the right sizes (a stored value may be damaged).
 * @param {unknown} raw
 * @returns {raw is Token}
 */
export function isToken(raw) {
  return (
    isObject(raw) &&
    isEpoch(raw.epoch) &&
    fromB64url(raw.input, TOKEN_INPUT_BYTES) !== null &&
    fromB64url(raw.output, OUTPUT_BYTES) !== null
  );
}

/**
 * A random delay in [minMs, maxMs): when the next refill check happens, so that refills fall at
 * moments unrelated to what the reader does.
 * @param {number} minMs
 * @param {number} maxMs
 */
export function jitter(minMs, maxMs) {
  const [r] = crypto.getRandomValues(new Uint32Array(1));
  return minMs + Math.floor((r / 2 ** 32) * (maxMs - minMs));
}
