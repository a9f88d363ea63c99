/**
 * Trickle's JavaScript SDK: the receipt verifier (docs/receipts.md) and, later, the page bridge.
 * No runtime dependencies; needs WebCrypto Ed25519 (Node >= 20, current browsers).
 */

export { KeySetError, RECEIPT_ERROR_CODES, ReceiptError } from './errors.js';
export { KeySet } from './keys.js';
export { MAX_TOKEN_BYTES, RECEIPT_TYPE, createVerifier } from './verifier.js';
export { CreditTracker, MemoryCreditStore } from './credits.js';

/** @typedef {import('./errors.js').ReceiptErrorCode} ReceiptErrorCode */
/** @typedef {import('./errors.js').KeySetErrorCode} KeySetErrorCode */
/** @typedef {import('./keys.js').KeySetUrlOptions} KeySetUrlOptions */
/** @typedef {import('./verifier.js').Receipt} Receipt */
/** @typedef {import('./verifier.js').Verifier} Verifier */
/** @typedef {import('./verifier.js').VerifierOptions} VerifierOptions */
/** @typedef {import('./verifier.js').VerifyOptions} VerifyOptions */
/** @typedef {import('./credits.js').CreditStore} CreditStore */
