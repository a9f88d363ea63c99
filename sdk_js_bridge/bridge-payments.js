/**
 * The page bridge's one-time payments: a request checked and posted to the Trickle extension
 * (this window only), its answer awaited, and the receipt handed to the site's purchase endpoint,
 * which verifies it and records the purchase (README.md "One-time payments"). Used by bridge.js.
 */

import { AMOUNT_PATTERN, BINDING_ATTRIBUTE, BINDING_PATTERN, postJson } from './bridge-shared.js';

/**
 * What `requestPayment` takes. Amounts are decimal strings, never a `number`.
 * @typedef {object} PaymentRequest
 * @property {string} amount  in MAJOR units of `currency`, e.g. "0.25"
 * @property {string} currency  e.g. "USD"
 * @property {string} [description]  shown to the reader in the extension's prompt; at most 200 characters
 * @property {string} orderRef  your order reference, 1-128 printable ASCII characters; the receipt's `ord`
 * @property {string} [paymentPointer]  the payee; default: the first monetization link's href
 * @property {string | null} [binding]  default: the link's data-trickle-binding, else the bridge's binding
 * @property {string} [purchaseUrl]  default: the bridge's `purchaseUrl` option
 * @property {number} [timeoutMs]  for the whole request, prompt included (default 120000)
 */

/**
 * What `requestPayment` resolves with: your purchase endpoint's answer, after it verified the receipt.
 * @typedef {{code: 'ok', order_ref: string, amount_minor: string, currency: string, scale: number}} PaymentOutcome
 */

/**
 * Every `code` a `requestPayment` rejection can carry.
 * `site_rejected`: your purchase endpoint refused the receipt (its code in `detail`) or could not be
 * reached (`detail` "network_error" or "http_<status>").
 */
export const PAYMENT_ERROR_CODES = Object.freeze(/** @type {const} */ ([
  'declined', 'no_extension', 'insufficient_funds', 'budget_exhausted', 'site_disabled', 'signed_out',
  'timeout', 'site_rejected', 'invalid_request', 'service_unreachable', 'payee_not_found', 'busy',
]));

/** @typedef {typeof PAYMENT_ERROR_CODES[number]} PaymentErrorCode */

/** The codes the extension may put in a failed `payment-result`; anything else counts as `declined`. */
const EXTENSION_ERROR_CODES = new Set([
  'declined', 'insufficient_funds', 'budget_exhausted', 'site_disabled', 'signed_out', 'invalid_request',
  'service_unreachable', 'payee_not_found', 'busy',
]);

/** How long the extension has to acknowledge a payment request before the bridge says `no_extension`. */
export const PAYMENT_ACK_TIMEOUT_MS = 1000;
const PAYMENT_TIMEOUT_MS = 120000;
const PURCHASE_ATTEMPTS = 3;
const PURCHASE_RETRY_MS = 500;
const DEFAULT_PURCHASE_URL = '/trickle/purchase';
const ORDER_REF_PATTERN = /^[\x20-\x7e]{1,128}$/;
const MAJOR_AMOUNT_PATTERN = /^(0|[1-9][0-9]*)(\.[0-9]{1,18})?$/;
const ASSET_CODE_PATTERN = /^[A-Z0-9]{3,12}$/;

/** A `requestPayment` rejection. */
export class PaymentError extends Error {
  /**
   * @param {PaymentErrorCode} code
   * @param {string} message
   * @param {{detail?: string | null, receipt?: string | null, cause?: unknown}} [options]
   */
  constructor(code, message, { detail = null, receipt = null, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'PaymentError';
    /** @readonly */
    this.code = code;
    /** For `site_rejected`: the purchase endpoint's error code (or "network_error", "http_<status>"). */
    this.detail = detail;
    /** The receipt, when the reader paid but the site did not confirm (`site_rejected`, `timeout`):
     * hand it to `submitPurchase` again later. Null otherwise. */
    this.receipt = receipt;
  }
}

/**
 * What the payments part reads from the page, through the bridge.
 * @typedef {object} PaymentPage
 * @property {() => import('./bridge-shared.js').BridgeLink | null} firstLink  the first monetization link
 * @property {() => string | null} binding  the bridge's binding value
 */

export class PagePayments {
  /** @type {import('./bridge-shared.js').BridgeWindow} */ #window;
  /** @type {string} */ #purchaseUrl;
  /** @type {PaymentPage} */ #page;
  /** a payment request waits for the extension or the site: the bridge sends one at a time */
  #pending = false;

  /**
   * @param {import('./bridge-shared.js').BridgeWindow} win
   * @param {string | undefined} purchaseUrl  the bridge's `purchaseUrl` option (checked when used)
   * @param {PaymentPage} page
   */
  constructor(win, purchaseUrl, page) {
    this.#window = win;
    this.#purchaseUrl = purchaseUrl === undefined ? DEFAULT_PURCHASE_URL : String(purchaseUrl);
    this.#page = page;
  }

  /**
   * The bridge's `requestPayment`: ask the extension, then hand the receipt to the purchase endpoint.
   * @param {PaymentRequest} request
   * @returns {Promise<PaymentOutcome>}
   */
  async request(request) {
    const started = Date.now();
    const { message, origin, purchaseUrl, timeoutMs } = this.#paymentMessage(request);
    if (typeof this.#window.MonetizationEvent !== 'function' || typeof this.#window.postMessage !== 'function') {
      throw new PaymentError('no_extension', 'the Trickle extension is not installed or not active on this page');
    }
    if (this.#pending) throw new PaymentError('busy', 'another payment request of this page is waiting');
    this.#pending = true;
    try {
      const receipt = await this.#askExtension(message, origin, timeoutMs);
      const remainingMs = Math.max(0, timeoutMs - (Date.now() - started));
      return await this.#postPurchase(receipt, message.orderRef, purchaseUrl, remainingMs);
    } finally {
      this.#pending = false;
    }
  }

  /**
   * The bridge's `submitPurchase`: hand a one-time receipt to the purchase endpoint again.
   * @param {{receipt: string, orderRef: string, purchaseUrl?: string, timeoutMs?: number}} submission
   * @returns {Promise<PaymentOutcome>}
   */
  async submit({ receipt, orderRef, purchaseUrl, timeoutMs = PAYMENT_TIMEOUT_MS }) {
    if (typeof receipt !== 'string' || receipt === '') throw invalid('receipt: expected the receipt string');
    if (typeof orderRef !== 'string' || !ORDER_REF_PATTERN.test(orderRef)) throw invalid('orderRef: expected 1-128 printable ASCII characters');
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) throw invalid('timeoutMs: expected a positive number');
    return this.#postPurchase(receipt, orderRef, this.#sameOriginUrl(purchaseUrl ?? this.#purchaseUrl), timeoutMs);
  }

  /**
   * The page → extension message of a request, checked; every problem is `invalid_request`.
   * @param {PaymentRequest} request
   */
  #paymentMessage(request) {
    if (typeof request !== 'object' || request === null) throw invalid('expected {amount, currency, description, orderRef}');
    const { amount, currency, description = '', orderRef, timeoutMs = PAYMENT_TIMEOUT_MS } = request;
    if (typeof amount !== 'string' || !MAJOR_AMOUNT_PATTERN.test(amount) || !/[1-9]/.test(amount)) {
      throw invalid(`amount: expected a positive decimal string in major units like "0.25" (never a number), got ${describeValue(amount)}`);
    }
    if (typeof currency !== 'string' || !ASSET_CODE_PATTERN.test(currency)) throw invalid(`currency: expected an asset code like "USD", got ${describeValue(currency)}`);
    if (typeof description !== 'string' || [...description].length > 200) throw invalid('description: expected a string of at most 200 characters');
    if (typeof orderRef !== 'string' || !ORDER_REF_PATTERN.test(orderRef)) throw invalid(`orderRef: expected 1-128 printable ASCII characters, got ${describeValue(orderRef)}`);
    if (!(typeof timeoutMs === 'number' && timeoutMs > 0 && Number.isFinite(timeoutMs))) throw invalid('timeoutMs: expected a positive number of milliseconds');
    const origin = this.#window.location?.origin;
    if (typeof origin !== 'string' || origin === '' || origin === 'null') throw invalid('the page has no origin to talk to the extension from');
    const link = this.#page.firstLink();
    const paymentPointer = request.paymentPointer ?? this.#absolute(link?.getAttribute('href') ?? null);
    if (typeof paymentPointer !== 'string' || !isHttpUrl(paymentPointer)) {
      throw invalid(`paymentPointer: expected an http(s) URL (or a <link rel="monetization">), got ${describeValue(paymentPointer)}`);
    }
    const binding = request.binding !== undefined ? request.binding : (link?.getAttribute(BINDING_ATTRIBUTE) ?? this.#page.binding());
    if (binding !== null && (typeof binding !== 'string' || !BINDING_PATTERN.test(binding))) {
      throw invalid('binding: expected 1-256 printable ASCII characters or null');
    }
    const purchaseUrl = this.#sameOriginUrl(request.purchaseUrl ?? this.#purchaseUrl);
    /** @type {Record<string, unknown> & {orderRef: string}} */
    const message = {
      source: 'trickle-page', type: 'payment-request', id: this.#randomId(),
      amount, currency, description, orderRef, paymentPointer,
    };
    if (binding !== null) message.binding = binding;
    return { message, origin, purchaseUrl, timeoutMs };
  }

  /**
   * Post the request to the extension (this window only, never "*") and wait for its answer.
   * @param {Record<string, unknown>} message
   * @param {string} origin
   * @param {number} timeoutMs
   * @returns {Promise<string>}  the receipt
   */
  #askExtension(message, origin, timeoutMs) {
    const win = this.#window;
    return new Promise((resolve, reject) => {
      /** @type {unknown} */ let ackTimer = null;
      /** @type {unknown} */ let timer = null;
      const finish = () => {
        win.removeEventListener?.('message', onMessage);
        win.clearTimeout(ackTimer);
        win.clearTimeout(timer);
      };
      const onMessage = (/** @type {any} */ event) => {
        // Only this window's own posts, from its own origin: frames and other windows are ignored.
        if (event?.source !== win || event.origin !== origin) return;
        const data = event.data;
        if (typeof data !== 'object' || data === null || data.source !== 'trickle-extension' || data.id !== message.id) return;
        if (data.type === 'payment-ack') {
          win.clearTimeout(ackTimer);
          ackTimer = null;
          return;
        }
        if (data.type !== 'payment-result') return;
        finish();
        if (data.ok === true && typeof data.receipt === 'string' && data.receipt !== '') {
          resolve(data.receipt);
        } else if (data.ok === true) {
          reject(new PaymentError('invalid_request', 'the extension answered without a receipt'));
        } else {
          const code = EXTENSION_ERROR_CODES.has(data.code) ? data.code : 'declined';
          reject(new PaymentError(code, typeof data.message === 'string' && data.message !== '' ? data.message : `the payment failed: ${code}`));
        }
      };
      win.addEventListener?.('message', onMessage);
      ackTimer = win.setTimeout(() => {
        finish();
        reject(new PaymentError('no_extension', `the Trickle extension did not answer within ${PAYMENT_ACK_TIMEOUT_MS} ms`));
      }, PAYMENT_ACK_TIMEOUT_MS);
      timer = win.setTimeout(() => {
        finish();
        reject(new PaymentError('timeout', `no answer to the payment request within ${timeoutMs} ms`));
      }, timeoutMs);
      try {
        /** @type {(message: unknown, targetOrigin: string) => void} */ (win.postMessage).call(win, message, origin);
      } catch (error) {
        finish();
        reject(new PaymentError('no_extension', 'the payment request could not be posted', { cause: error }));
      }
    });
  }

  /**
   * POST the receipt to the purchase endpoint; a network failure or a 5xx is retried (the endpoint
   * answers the same receipt of the same visitor with the same purchase).
   * @param {string} receipt
   * @param {string} orderRef
   * @param {string} purchaseUrl
   * @param {number} timeoutMs
   * @returns {Promise<PaymentOutcome>}
   */
  async #postPurchase(receipt, orderRef, purchaseUrl, timeoutMs) {
    const win = this.#window;
    if (typeof win.fetch !== 'function') throw new PaymentError('site_rejected', 'fetch is not available', { detail: 'network_error', receipt });
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = win.setTimeout(() => controller?.abort(), timeoutMs);
    try {
      for (let attempt = 1; ; attempt += 1) {
        /** @type {{detail: string, message: string}} */
        let failure;
        try {
          const response = await postJson(win, purchaseUrl, { receipt, order_ref: orderRef }, { signal: controller?.signal });
          const body = /** @type {any} */ (response.body);
          if (response.ok) {
            if (body?.code === 'ok' && body.order_ref === orderRef && typeof body.amount_minor === 'string'
                && AMOUNT_PATTERN.test(body.amount_minor) && typeof body.currency === 'string' && Number.isSafeInteger(body.scale)) {
              return { code: 'ok', order_ref: body.order_ref, amount_minor: body.amount_minor, currency: body.currency, scale: body.scale };
            }
            throw new PaymentError('site_rejected', 'the purchase endpoint answered without a purchase for this order', { detail: 'invalid_answer', receipt });
          }
          const error = body?.error;
          const detail = typeof error?.code === 'string' ? error.code : `http_${response.status}`;
          const text = typeof error?.message === 'string' ? error.message : `the purchase endpoint answered ${response.status}`;
          if (response.status < 500) throw new PaymentError('site_rejected', text, { detail, receipt });
          failure = { detail, message: text };
        } catch (error) {
          if (error instanceof PaymentError) throw error;
          if (controller?.signal.aborted === true) {
            throw new PaymentError('timeout', `the purchase endpoint did not answer within ${timeoutMs} ms`, { receipt, cause: error });
          }
          failure = { detail: 'network_error', message: String(/** @type {any} */ (error)?.message ?? error) };
        }
        if (attempt >= PURCHASE_ATTEMPTS || controller?.signal.aborted === true) {
          throw new PaymentError('site_rejected', failure.message, { detail: failure.detail, receipt });
        }
        await new Promise((resolve) => win.setTimeout(() => resolve(undefined), PURCHASE_RETRY_MS * attempt));
      }
    } finally {
      win.clearTimeout(timer);
    }
  }

  /**
   * @param {string} url
   * @returns {string}  the absolute URL, when it is on the page's origin
   */
  #sameOriginUrl(url) {
    const location = this.#window.location;
    let resolved;
    try {
      resolved = new URL(String(url), location?.href);
    } catch {
      throw invalid(`purchaseUrl: expected a URL, got ${describeValue(url)}`);
    }
    if (location === undefined || resolved.origin !== location.origin) {
      throw invalid('purchaseUrl: expected a URL on the page\'s own origin (the receipt goes to your server only)');
    }
    return resolved.href;
  }

  /**
   * @param {string | null} href
   * @returns {string | null}
   */
  #absolute(href) {
    if (href === null) return null;
    try {
      return new URL(href, this.#window.location?.href).href;
    } catch {
      return href;
    }
  }

  /** 128 random bits, base64url (22 characters): the request id. */
  #randomId() {
    const bytes = new Uint8Array(16);
    if (this.#window.crypto !== undefined) this.#window.crypto.getRandomValues(bytes);
    else globalThis.crypto.getRandomValues(bytes);
    let text = '';
    for (const byte of bytes) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
}

/**
 * @param {string} message
 * @returns {PaymentError}
 */
function invalid(message) {
  return new PaymentError('invalid_request', message);
}

/**
 * @param {string} value
 * @returns {boolean}
 */
function isHttpUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function describeValue(value) {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
  if (value === null) return 'null';
  return `a ${typeof value}`;
}
