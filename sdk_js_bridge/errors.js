/**
 * The errors the verifier raises: one `ReceiptError` with a stable `code` per rule of
 * docs/receipts.md §3, and `KeySetError` for a key set that cannot be loaded.
 */

/**
 * Every code `ReceiptError` can carry, in the order of the rules in docs/receipts.md §3.
 * The codes are stable: a new rule gets a new code.
 */
export const RECEIPT_ERROR_CODES = Object.freeze(
  /** @type {const} */ ([
    'token_too_large',
    'malformed_jws',
    'malformed_header',
    'unsupported_algorithm',
    'invalid_kid',
    'unknown_kid',
    'bad_signature',
    'wrong_type',
    'malformed_payload',
    'missing_claim',
    'invalid_claim',
    'wrong_issuer',
    'wrong_audience',
    'wrong_payee',
    'expired',
    'not_yet_valid',
    'invalid_amount',
    'total_below_amount',
    'binding_mismatch',
  ]),
);

/** @typedef {typeof RECEIPT_ERROR_CODES[number]} ReceiptErrorCode */

/**
 * Raised (as a rejected promise) by `verify` when a receipt breaks a rule of the spec.
 * `code` names the broken rule; `message` says what was expected and what arrived.
 */
export class ReceiptError extends Error {
  /**
   * @param {ReceiptErrorCode} code
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'ReceiptError';
    /** @readonly */
    this.code = code;
  }
}

/** @typedef {'invalid_jwks' | 'jwks_fetch_failed' | 'crypto_unavailable'} KeySetErrorCode */

/**
 * Raised by `KeySet.fromJwks` / `KeySet.fromUrl` when the key set cannot be loaded: the document is
 * not a usable Ed25519 JWK Set (`invalid_jwks`), the fetch failed (`jwks_fetch_failed`), or the
 * runtime has no WebCrypto Ed25519 (`crypto_unavailable`). Never raised by `verify`, which reports
 * a missing key as `ReceiptError` `unknown_kid`.
 */
export class KeySetError extends Error {
  /**
   * @param {KeySetErrorCode} code
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'KeySetError';
    /** @readonly */
    this.code = code;
  }
}
