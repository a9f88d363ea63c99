/**
 * Trickle's JavaScript SDK: the receipt verifier (docs/receipts.md), the page bridge (bridge.js; a page
 * loads it and the bridge-*.js files it imports, nothing else), the Node receipt handler
 * (server.js) and purchase endpoint (purchases.js).
 * No runtime dependencies; needs WebCrypto Ed25519 (Node >= 20, current browsers).
 */

export { KeySetError, RECEIPT_ERROR_CODES, ReceiptError } from './errors.js';
export { KeySet } from './keys.js';
export { MAX_TOKEN_BYTES, RECEIPT_TYPE, createVerifier } from './verifier.js';
export { MAX_JSON_DEPTH } from './strict-json.js';
export { CreditTracker, MemoryCreditStore } from './credits.js';
export { Bridge, MAX_BATCH_SIZE, PAYMENT_ERROR_CODES, PaymentError, createBridge, formatMinor } from './bridge.js';
export { MAX_BODY_BYTES, MAX_RECEIPTS_PER_REQUEST, MemorySiteStore, RESULT_CODES, createReceiptHandler } from './server.js';
export { MAX_PURCHASE_BODY_BYTES, MemoryPurchaseStore, PURCHASE_ERROR_CODES, PurchaseError, createPurchaseHandler } from './purchases.js';

/** @typedef {import('./errors.js').ReceiptErrorCode} ReceiptErrorCode */
/** @typedef {import('./errors.js').KeySetErrorCode} KeySetErrorCode */
/** @typedef {import('./keys.js').KeySetUrlOptions} KeySetUrlOptions */
/** @typedef {import('./verifier.js').Receipt} Receipt */
/** @typedef {import('./verifier.js').Verifier} Verifier */
/** @typedef {import('./verifier.js').VerifierOptions} VerifierOptions */
/** @typedef {import('./verifier.js').VerifyOptions} VerifyOptions */
/** @typedef {import('./credits.js').CreditStore} CreditStore */
/** @typedef {import('./bridge.js').BridgeOptions} BridgeOptions */
/** @typedef {import('./bridge.js').BridgeState} BridgeState */
/** @typedef {import('./server.js').ReceiptHandlerOptions} ReceiptHandlerOptions */
/** @typedef {import('./server.js').ReceiptHandler} ReceiptHandler */
/** @typedef {import('./server.js').SiteStore} SiteStore */
/** @typedef {import('./bridge.js').PaymentRequest} PaymentRequest */
/** @typedef {import('./bridge.js').PaymentErrorCode} PaymentErrorCode */
/** @typedef {import('./purchases.js').PurchaseHandlerOptions} PurchaseHandlerOptions */
/** @typedef {import('./purchases.js').PurchaseHandler} PurchaseHandler */
/** @typedef {import('./purchases.js').PurchaseStore} PurchaseStore */
/** @typedef {import('./purchases.js').Purchase} Purchase */
/** @typedef {import('./purchases.js').PurchaseAnswer} PurchaseAnswer */
/** @typedef {import('./purchases.js').Price} Price */
