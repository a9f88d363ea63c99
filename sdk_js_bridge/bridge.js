/**
 * The page bridge: listens for Web Monetization `monetization` events, keeps the running total,
 * puts the site's binding value on the monetization link(s), and forwards the receipts to the
 * site's own endpoint in batches (protocol: README.md "Forwarding protocol"). It also asks the
 * extension for one-time payments and hands their receipts to the site's purchase endpoint
 * (`requestPayment`, README.md "One-time payments").
 *
 * Browser-only code with no imports: a page loads this file alone. Every DOM access goes through
 * the `window` option, so tests (and unusual hosts) can inject their own.
 */

/** @typedef {'unsupported' | 'pending' | 'streaming' | 'stopped'} BridgeState */

/**
 * A money amount: integer minor units of `currency` at `scale` (`minor` = 1 means 10^-scale).
 * @typedef {object} Amount
 * @property {string} currency
 * @property {bigint} minor
 * @property {number} scale
 * @property {string} value  the same amount in major units as a decimal string, e.g. "0.000002000"
 */

/**
 * What `onReceipt` callbacks get for every distinct payment event.
 * @typedef {object} ReceiptEvent
 * @property {string | null} receipt  the compact JWS, or null when the agent sent none
 * @property {Amount} amount  this event's amount
 * @property {Amount} total  the running total in this currency after the event
 * @property {string | null} paymentPointer
 */

/**
 * The server's answer to one forwarded batch (README.md "Forwarding protocol").
 * @typedef {object} ForwardResult
 * @property {string[]} receipts  the batch that was acknowledged
 * @property {{code: string, credited?: string, message?: string}[]} results
 * @property {PaidTotal | null} paid
 */

/** @typedef {{total: string, currency: string, scale: number}} PaidTotal */

/**
 * A failed forward; the same batch is sent again after `retryInMs`.
 * @typedef {object} ForwardError
 * @property {number | null} status  the HTTP status, or null for a network failure or timeout
 * @property {string} code  the server's error code, `network_error`, `timeout` or `http_<status>`
 * @property {string} message
 * @property {number} attempt  1 for the first failure of this batch
 * @property {number} retryInMs
 */

/**
 * The parts of `window` the bridge uses; `globalThis` in a browser.
 * @typedef {object} BridgeWindow
 * @property {BridgeDocument} document
 * @property {unknown} [MonetizationEvent]
 * @property {new (callback: () => void) => {observe(target: unknown, options: object): void, disconnect(): void}} [MutationObserver]
 * @property {(input: string, init: object) => Promise<{ok: boolean, status: number, json(): Promise<unknown>}>} [fetch]
 * @property {(callback: () => void, ms: number) => unknown} setTimeout
 * @property {(handle: any) => void} clearTimeout
 * @property {{getItem(key: string): string | null, setItem(key: string, value: string): void, removeItem(key: string): void} | null} [sessionStorage]
 * @property {(type: string, listener: (event: any) => void) => void} [addEventListener]
 * @property {(type: string, listener: (event: any) => void) => void} [removeEventListener]
 * @property {{origin: string, href: string}} [location]
 * @property {(message: unknown, targetOrigin: string) => void} [postMessage]
 * @property {{getRandomValues<T extends Uint8Array>(array: T): T}} [crypto]
 */

/**
 * @typedef {object} BridgeDocument
 * @property {(type: string, listener: (event: any) => void, capture?: boolean) => void} addEventListener
 * @property {(type: string, listener: (event: any) => void, capture?: boolean) => void} removeEventListener
 * @property {(selector: string) => ArrayLike<BridgeLink>} querySelectorAll
 * @property {(name: string) => {relList?: {supports?(token: string): boolean}}} createElement
 * @property {unknown} [documentElement]
 * @property {string} [visibilityState]
 */

/**
 * @typedef {object} BridgeLink
 * @property {(name: string) => string | null} getAttribute
 * @property {(name: string, value: string) => void} setAttribute
 * @property {(name: string) => void} removeAttribute
 */

/**
 * @typedef {object} BridgeOptions
 * @property {string} [endpoint]  where to POST receipts (same origin); without it nothing is forwarded
 * @property {string | null} [binding]  the site's binding value for this visitor (see setBinding)
 * @property {number} [batchSize]  receipts per request, 1..100 (default 20)
 * @property {number} [batchDelayMs]  how long a receipt may wait for others before a request (default 2000)
 * @property {number} [stopAfterMs]  `streaming` turns `stopped` after this long without a payment (default 10000)
 * @property {number} [retryInitialMs]  first backoff after a failed request (default 1000)
 * @property {number} [retryMaxMs]  backoff cap (default 60000)
 * @property {number} [requestTimeoutMs]  a request taking longer counts as failed (default 15000)
 * @property {boolean | string} [persist]  keep unacknowledged receipts in sessionStorage (true, or the key to use)
 * @property {BridgeWindow} [window]  default: globalThis
 * @property {() => number} [random]  for the backoff jitter (default Math.random)
 * @property {string} [purchaseUrl]  the site's purchase endpoint for `requestPayment` (same origin;
 *   default "/trickle/purchase")
 */

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

export const MAX_BATCH_SIZE = 100;
const LINK_SELECTOR = 'link[rel~="monetization" i]';
const BINDING_ATTRIBUTE = 'data-trickle-binding';
const BINDING_PATTERN = /^[\x20-\x7e]{1,256}$/;
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)$/;
const DECIMAL_PATTERN = /^([0-9]+)(?:\.([0-9]+))?$/;
const CURRENCY_PATTERN = /^[A-Za-z0-9]{1,12}$/;
const ORDER_REF_PATTERN = /^[\x20-\x7e]{1,128}$/;
const MAJOR_AMOUNT_PATTERN = /^(0|[1-9][0-9]*)(\.[0-9]{1,18})?$/;
const ASSET_CODE_PATTERN = /^[A-Z0-9]{3,12}$/;
const DEFAULT_PURCHASE_URL = '/trickle/purchase';

/**
 * Format minor units as a major-unit decimal string without floats.
 * @param {bigint} minor
 * @param {number} scale
 * @returns {string}
 */
export function formatMinor(minor, scale) {
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString().padStart(scale + 1, '0');
  const whole = digits.slice(0, digits.length - scale);
  const text = scale === 0 ? whole : `${whole}.${digits.slice(digits.length - scale)}`;
  return negative ? `-${text}` : text;
}

/**
 * The amount of one `monetization` event: the Trickle fields `amountMinor` + `scale` when present,
 * else `amountSent.value` (a major-unit decimal string, its fraction digits giving the scale).
 * @param {any} event
 * @returns {{currency: string, minor: bigint, scale: number} | null}  null when unusable
 */
function amountOf(event) {
  const sent = event?.amountSent;
  const currency = typeof sent?.currency === 'string' ? sent.currency : null;
  if (currency === null || !CURRENCY_PATTERN.test(currency)) return null;
  const scale = event.scale;
  if (typeof event.amountMinor === 'string' && AMOUNT_PATTERN.test(event.amountMinor)
      && Number.isSafeInteger(scale) && scale >= 0 && scale <= 18) {
    return { currency, minor: BigInt(event.amountMinor), scale };
  }
  const match = typeof sent.value === 'string' ? DECIMAL_PATTERN.exec(sent.value) : null;
  if (match === null) return null;
  const fraction = match[2] ?? '';
  if (fraction.length > 18) return null;
  return { currency, minor: BigInt(match[1] + fraction), scale: fraction.length };
}

/**
 * Creates and starts a bridge. Never throws on a page without a Web Monetization agent: its state
 * is then `unsupported`.
 * @param {BridgeOptions} [options]
 * @returns {Bridge}
 */
export function createBridge(options = {}) {
  return new Bridge(options);
}

export class Bridge {
  /** @type {BridgeWindow} */ #window;
  /** @type {BridgeDocument} */ #document;
  /** @type {string | null} */ #endpoint;
  /** @type {string | null} */ #binding = null;
  /** Whether the bridge owns the links' binding attribute: only after setBinding (or the
   * `binding` option). Until then a binding the server rendered into the page is left alone. */
  #bindingManaged = false;
  #batchSize; #batchDelayMs; #stopAfterMs; #retryInitialMs; #retryMaxMs; #requestTimeoutMs;
  /** @type {() => number} */ #random;
  /** @type {string | null} */ #storageKey = null;
  /** @type {string} */ #purchaseUrl;
  /** a payment request waits for the extension or the site: the bridge sends one at a time */
  #paymentPending = false;

  /** @type {BridgeState} */ #state = 'unsupported';
  #supported = false;
  #linkCount = 0;
  #receivedAny = false;
  /** @type {Map<string, {minor: bigint, scale: number}>} */ #totals = new Map();
  /** @type {PaidTotal | null} */ #paid = null;

  /** receipts ever queued by this bridge, so a repeated event is queued (and counted) once */
  /** @type {Set<string>} */ #seen = new Set();
  /** the batch being sent; it is retried unchanged until a 2xx acknowledges it */
  /** @type {string[] | null} */ #batch = null;
  /** @type {string[]} */ #waiting = [];
  #inFlight = false;
  #failures = 0;
  /** @type {unknown} */ #flushTimer = null;
  /** @type {unknown} */ #stopTimer = null;
  #destroyed = false;

  /** @type {Set<(event: ReceiptEvent) => void>} */ #receiptListeners = new Set();
  /** @type {Set<(state: BridgeState, previous: BridgeState) => void>} */ #stateListeners = new Set();
  /** @type {Set<(result: ForwardResult) => void>} */ #forwardListeners = new Set();
  /** @type {Set<(error: ForwardError) => void>} */ #errorListeners = new Set();
  /** @type {{disconnect(): void} | null} */ #observer = null;
  #handleEvent = (/** @type {any} */ event) => this.#onEvent(event);
  #handlePageHide = () => this.#onPageHide();

  /** @param {BridgeOptions} [options] */
  constructor(options = {}) {
    this.#window = options.window ?? /** @type {BridgeWindow} */ (/** @type {unknown} */ (globalThis));
    this.#document = this.#window.document;
    this.#endpoint = options.endpoint === undefined ? null : String(options.endpoint);
    this.#batchSize = positiveInteger(options.batchSize, 20, 'batchSize', MAX_BATCH_SIZE);
    this.#batchDelayMs = nonNegative(options.batchDelayMs, 2000, 'batchDelayMs');
    this.#stopAfterMs = nonNegative(options.stopAfterMs, 10000, 'stopAfterMs');
    this.#retryInitialMs = nonNegative(options.retryInitialMs, 1000, 'retryInitialMs');
    this.#retryMaxMs = nonNegative(options.retryMaxMs, 60000, 'retryMaxMs');
    this.#requestTimeoutMs = nonNegative(options.requestTimeoutMs, 15000, 'requestTimeoutMs');
    this.#random = options.random ?? Math.random;
    this.#purchaseUrl = options.purchaseUrl === undefined ? DEFAULT_PURCHASE_URL : String(options.purchaseUrl);
    if (options.persist && this.#endpoint !== null) {
      this.#storageKey = typeof options.persist === 'string' ? options.persist : `trickle-bridge:${this.#endpoint}`;
    }
    if (options.binding !== undefined && options.binding !== null) this.setBinding(options.binding);

    if (this.#document === undefined || this.#document === null) return; // not a page: stays unsupported
    this.#document.addEventListener('monetization', this.#handleEvent, true);
    this.#window.addEventListener?.('pagehide', this.#handlePageHide);
    const Observer = this.#window.MutationObserver;
    if (typeof Observer === 'function') {
      const observer = new Observer(() => this.#scan());
      observer.observe(this.#document.documentElement ?? this.#document, {
        childList: true, subtree: true, attributes: true, attributeFilter: ['rel'],
      });
      this.#observer = observer;
    }
    this.#restore();
    this.#scan();
  }

  /** @returns {BridgeState} */
  get state() {
    return this.#state;
  }

  /** The binding value put on the monetization links, or null. */
  get binding() {
    return this.#binding;
  }

  /**
   * The running total per currency, as the agent reported it (not verified: only the server's
   * `paid` is proof of payment).
   * @returns {Amount[]}
   */
  get totals() {
    return [...this.#totals].map(([currency, { minor, scale }]) => ({ currency, minor, scale, value: formatMinor(minor, scale) }));
  }

  /**
   * The running total in one currency (zero at scale 0 when nothing arrived in it).
   * @param {string} [currency]  default: the currency of the first payment, else "USD"
   * @returns {Amount}
   */
  total(currency) {
    const name = currency ?? this.#totals.keys().next().value ?? 'USD';
    const entry = this.#totals.get(name) ?? { minor: 0n, scale: 0 };
    return { currency: name, minor: entry.minor, scale: entry.scale, value: formatMinor(entry.minor, entry.scale) };
  }

  /** The visitor's total as the site's server last reported it (`paid` of the last answer), or null. */
  get paid() {
    return this.#paid;
  }

  /** How many receipts wait to be acknowledged by the endpoint. */
  get pendingCount() {
    return (this.#batch?.length ?? 0) + this.#waiting.length;
  }

  /**
   * Put the site's binding value on every monetization link (now and added later) as
   * `data-trickle-binding`, where the extension picks it up for the receipts' `bnd`. Set it before
   * the stream starts (or render the attribute server-side): a running stream may keep the old value.
   * @param {string | null} value  1–256 printable ASCII characters; null removes it
   */
  setBinding(value) {
    if (value !== null && (typeof value !== 'string' || !BINDING_PATTERN.test(value))) {
      throw new TypeError(`setBinding: expected 1-256 printable ASCII characters or null, got ${JSON.stringify(value)}`);
    }
    this.#binding = value;
    this.#bindingManaged = true;
    if (this.#document) this.#scan();
  }

  /**
   * @param {(event: ReceiptEvent) => void} callback  called for every distinct payment event
   * @returns {() => void}  unsubscribe
   */
  onReceipt(callback) {
    return subscribe(this.#receiptListeners, callback);
  }

  /**
   * @param {(state: BridgeState, previous: BridgeState) => void} callback
   * @returns {() => void}  unsubscribe
   */
  onStateChange(callback) {
    return subscribe(this.#stateListeners, callback);
  }

  /**
   * @param {(result: ForwardResult) => void} callback  called when the endpoint acknowledges a batch
   * @returns {() => void}  unsubscribe
   */
  onForwarded(callback) {
    return subscribe(this.#forwardListeners, callback);
  }

  /**
   * @param {(error: ForwardError) => void} callback  called when a forward fails (it will be retried)
   * @returns {() => void}  unsubscribe
   */
  onError(callback) {
    return subscribe(this.#errorListeners, callback);
  }

  /** Send the waiting receipts now instead of after `batchDelayMs`. */
  flush() {
    this.#clearFlushTimer();
    this.#failures = 0;
    void this.#send(false);
  }

  /** Stop listening, observing and forwarding. Unacknowledged receipts stay persisted if `persist` is on. */
  destroy() {
    this.#destroyed = true;
    this.#document?.removeEventListener('monetization', this.#handleEvent, true);
    this.#window.removeEventListener?.('pagehide', this.#handlePageHide);
    this.#observer?.disconnect();
    this.#clearFlushTimer();
    if (this.#stopTimer !== null) this.#window.clearTimeout(this.#stopTimer);
    this.#stopTimer = null;
  }

  /**
   * Ask the reader, through the Trickle extension, for a one-time payment, then hand the receipt to
   * your purchase endpoint, which verifies it and records the purchase. Resolves with the endpoint's
   * answer (`{code: "ok", order_ref, amount_minor, currency, scale}`): the only outcome to unlock
   * with. Rejects with a `PaymentError` whose `code` is one of `PAYMENT_ERROR_CODES`.
   *
   * What a page script posts pretending to be the extension is never believed: every receipt goes
   * to the site's server, which verifies its signature, amount and order.
   * @param {PaymentRequest} request
   * @returns {Promise<PaymentOutcome>}
   */
  async requestPayment(request) {
    const started = Date.now();
    const { message, origin, purchaseUrl, timeoutMs } = this.#paymentMessage(request);
    if (typeof this.#window.MonetizationEvent !== 'function' || typeof this.#window.postMessage !== 'function') {
      throw new PaymentError('no_extension', 'the Trickle extension is not installed or not active on this page');
    }
    if (this.#paymentPending) throw new PaymentError('busy', 'another payment request of this page is waiting');
    this.#paymentPending = true;
    try {
      const receipt = await this.#askExtension(message, origin, timeoutMs);
      const remainingMs = Math.max(0, timeoutMs - (Date.now() - started));
      return await this.#postPurchase(receipt, message.orderRef, purchaseUrl, remainingMs);
    } finally {
      this.#paymentPending = false;
    }
  }

  /**
   * Hand a one-time receipt to your purchase endpoint again, e.g. the `receipt` of a `PaymentError`
   * when the site could not be reached. Same outcome and errors as `requestPayment`'s last step.
   * @param {{receipt: string, orderRef: string, purchaseUrl?: string, timeoutMs?: number}} submission
   * @returns {Promise<PaymentOutcome>}
   */
  async submitPurchase({ receipt, orderRef, purchaseUrl, timeoutMs = PAYMENT_TIMEOUT_MS }) {
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
    const link = this.#links()[0] ?? null;
    const paymentPointer = request.paymentPointer ?? this.#absolute(link?.getAttribute('href') ?? null);
    if (typeof paymentPointer !== 'string' || !isHttpUrl(paymentPointer)) {
      throw invalid(`paymentPointer: expected an http(s) URL (or a <link rel="monetization">), got ${describeValue(paymentPointer)}`);
    }
    const binding = request.binding !== undefined ? request.binding : (link?.getAttribute(BINDING_ATTRIBUTE) ?? this.#binding);
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
    const fetchFn = win.fetch;
    if (typeof fetchFn !== 'function') throw new PaymentError('site_rejected', 'fetch is not available', { detail: 'network_error', receipt });
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = win.setTimeout(() => controller?.abort(), timeoutMs);
    try {
      for (let attempt = 1; ; attempt += 1) {
        /** @type {{detail: string, message: string}} */
        let failure;
        try {
          const response = await fetchFn.call(win, purchaseUrl, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json' },
            body: JSON.stringify({ receipt, order_ref: orderRef }),
            credentials: 'same-origin',
            signal: controller?.signal,
          });
          /** @type {any} */
          let body = null;
          try {
            body = await response.json();
          } catch {
            body = null;
          }
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

  /** Re-read the links: support, binding attribute, state. */
  #scan() {
    if (this.#destroyed) return;
    const links = this.#links();
    this.#linkCount = links.length;
    for (const link of links) {
      if (!this.#bindingManaged) continue;
      if (this.#binding === null) {
        if (link.getAttribute(BINDING_ATTRIBUTE) !== null) link.removeAttribute(BINDING_ATTRIBUTE);
      } else if (link.getAttribute(BINDING_ATTRIBUTE) !== this.#binding) {
        link.setAttribute(BINDING_ATTRIBUTE, this.#binding);
      }
    }
    if (!this.#supported) this.#supported = this.#detectSupport();
    this.#updateState();
  }

  /** @returns {BridgeLink[]} */
  #links() {
    try {
      return Array.from(this.#document.querySelectorAll(LINK_SELECTOR));
    } catch {
      return [];
    }
  }

  #detectSupport() {
    try {
      if (typeof this.#window.MonetizationEvent === 'function') return true;
      const relList = this.#document.createElement('link').relList;
      return typeof relList?.supports === 'function' && relList.supports('monetization') === true;
    } catch {
      return false;
    }
  }

  #updateState() {
    /** @type {BridgeState} */
    let next;
    if (!this.#supported) next = 'unsupported';
    else if (this.#linkCount === 0) next = 'stopped';
    else if (this.#stopTimer !== null) next = 'streaming';
    else next = this.#receivedAny ? 'stopped' : 'pending';
    if (next === 'stopped' && this.#stopTimer !== null) {
      this.#window.clearTimeout(this.#stopTimer);
      this.#stopTimer = null;
    }
    if (next === this.#state) return;
    const previous = this.#state;
    this.#state = next;
    notify(this.#stateListeners, (listener) => listener(next, previous));
  }

  /** @param {any} event */
  #onEvent(event) {
    if (this.#destroyed) return;
    const amount = amountOf(event);
    if (amount === null) return;
    const receipt = typeof event.receipt === 'string' && event.receipt.length > 0 ? event.receipt : null;
    if (receipt !== null) {
      if (this.#seen.has(receipt)) return; // the same payment again: counted and queued once
      this.#seen.add(receipt);
    }
    this.#supported = true; // an agent is evidently here, even if it did not announce itself
    this.#receivedAny = true;
    if (this.#linkCount === 0) this.#linkCount = this.#links().length;
    if (this.#stopTimer !== null) this.#window.clearTimeout(this.#stopTimer);
    this.#stopTimer = this.#window.setTimeout(() => {
      this.#stopTimer = null;
      this.#updateState();
    }, this.#stopAfterMs);
    this.#updateState();

    const total = this.#add(amount);
    /** @type {ReceiptEvent} */
    const payload = {
      receipt,
      amount: { ...amount, value: formatMinor(amount.minor, amount.scale) },
      total,
      paymentPointer: typeof event.paymentPointer === 'string' ? event.paymentPointer : null,
    };
    if (receipt !== null && this.#endpoint !== null) this.#enqueue(receipt);
    notify(this.#receiptListeners, (listener) => listener(payload));
  }

  /**
   * @param {{currency: string, minor: bigint, scale: number}} amount
   * @returns {Amount}
   */
  #add(amount) {
    const current = this.#totals.get(amount.currency) ?? { minor: 0n, scale: amount.scale };
    const scale = Math.max(current.scale, amount.scale);
    const minor = current.minor * 10n ** BigInt(scale - current.scale) + amount.minor * 10n ** BigInt(scale - amount.scale);
    this.#totals.set(amount.currency, { minor, scale });
    return { currency: amount.currency, minor, scale, value: formatMinor(minor, scale) };
  }

  /** @param {string} receipt */
  #enqueue(receipt) {
    this.#waiting.push(receipt);
    this.#save();
    if (this.#inFlight || this.#failures > 0) return; // the running send / retry picks it up
    if (this.#waiting.length >= this.#batchSize) {
      this.#clearFlushTimer();
      void this.#send(false);
    } else if (this.#flushTimer === null) {
      this.#schedule(this.#batchDelayMs);
    }
  }

  /** @param {number} ms */
  #schedule(ms) {
    this.#clearFlushTimer();
    this.#flushTimer = this.#window.setTimeout(() => {
      this.#flushTimer = null;
      void this.#send(false);
    }, ms);
  }

  #clearFlushTimer() {
    if (this.#flushTimer !== null) this.#window.clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
  }

  /**
   * Send the current batch (forming it from the waiting receipts if there is none).
   * @param {boolean} keepalive  true while the page is being unloaded
   */
  async #send(keepalive) {
    if (this.#inFlight || this.#endpoint === null) return;
    if (this.#batch === null) {
      if (this.#waiting.length === 0) return;
      this.#batch = this.#waiting.splice(0, this.#batchSize);
    }
    const batch = this.#batch;
    const fetchFn = this.#window.fetch;
    this.#inFlight = true;
    /** @type {ForwardError | null} */
    let failure = null;
    /** @type {unknown} */
    let body = null;
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = this.#window.setTimeout(() => controller?.abort(), this.#requestTimeoutMs);
    try {
      if (typeof fetchFn !== 'function') throw new Error('fetch is not available');
      const response = await fetchFn.call(this.#window, this.#endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ receipts: batch }),
        credentials: 'same-origin',
        keepalive,
        signal: controller?.signal,
      });
      try {
        body = await response.json();
      } catch {
        body = null;
      }
      if (!response.ok) {
        const error = /** @type {any} */ (body)?.error;
        failure = {
          status: response.status,
          code: typeof error?.code === 'string' ? error.code : `http_${response.status}`,
          message: typeof error?.message === 'string' ? error.message : `the endpoint answered ${response.status}`,
          attempt: 0, retryInMs: 0,
        };
      }
    } catch (error) {
      const aborted = controller?.signal.aborted === true;
      failure = {
        status: null,
        code: aborted ? 'timeout' : 'network_error',
        message: aborted ? `no answer within ${this.#requestTimeoutMs} ms` : String(/** @type {any} */ (error)?.message ?? error),
        attempt: 0, retryInMs: 0,
      };
    } finally {
      this.#window.clearTimeout(timer);
      this.#inFlight = false;
    }
    if (this.#destroyed) return;

    if (failure !== null) {
      this.#failures += 1;
      const backoff = Math.min(this.#retryMaxMs, this.#retryInitialMs * 2 ** (this.#failures - 1));
      failure.attempt = this.#failures;
      failure.retryInMs = Math.round(backoff * (0.5 + this.#random() / 2));
      this.#schedule(failure.retryInMs);
      const reported = failure;
      notify(this.#errorListeners, (listener) => listener(reported));
      return;
    }

    this.#failures = 0;
    this.#batch = null;
    this.#save();
    const result = parseAnswer(batch, body);
    if (result.paid !== null) this.#paid = result.paid;
    if (this.#waiting.length >= this.#batchSize) void this.#send(false);
    else if (this.#waiting.length > 0) this.#schedule(this.#batchDelayMs);
    notify(this.#forwardListeners, (listener) => listener(result));
  }

  #onPageHide() {
    if (this.#endpoint === null || this.pendingCount === 0) return;
    this.#clearFlushTimer();
    void this.#send(true);
  }

  #storage() {
    try {
      return this.#window.sessionStorage ?? null;
    } catch {
      return null; // storage disabled by the browser
    }
  }

  #save() {
    if (this.#storageKey === null) return;
    const pending = [...(this.#batch ?? []), ...this.#waiting];
    try {
      const storage = this.#storage();
      if (pending.length === 0) storage?.removeItem(this.#storageKey);
      else storage?.setItem(this.#storageKey, JSON.stringify(pending));
    } catch {
      // quota or privacy mode: the in-memory queue still holds them
    }
  }

  #restore() {
    if (this.#storageKey === null) return;
    /** @type {unknown} */
    let saved = null;
    try {
      saved = JSON.parse(this.#storage()?.getItem(this.#storageKey) ?? 'null');
    } catch {
      saved = null;
    }
    if (!Array.isArray(saved)) return;
    for (const receipt of saved) {
      if (typeof receipt === 'string' && !this.#seen.has(receipt)) {
        this.#seen.add(receipt);
        this.#waiting.push(receipt);
      }
    }
    if (this.#waiting.length > 0) this.#schedule(0);
  }
}

/**
 * @param {string[]} receipts
 * @param {unknown} body
 * @returns {ForwardResult}
 */
function parseAnswer(receipts, body) {
  const answer = /** @type {any} */ (body);
  const results = Array.isArray(answer?.results) ? answer.results.filter(
    (/** @type {any} */ item) => typeof item?.code === 'string',
  ) : [];
  const paid = answer?.paid;
  const validPaid = typeof paid?.total === 'string' && AMOUNT_PATTERN.test(paid.total)
    && typeof paid.currency === 'string' && Number.isSafeInteger(paid.scale);
  return {
    receipts,
    results,
    paid: validPaid ? { total: paid.total, currency: paid.currency, scale: paid.scale } : null,
  };
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

/**
 * @template T
 * @param {Set<T>} listeners
 * @param {T} callback
 * @returns {() => void}
 */
function subscribe(listeners, callback) {
  if (typeof callback !== 'function') throw new TypeError('expected a callback function');
  listeners.add(callback);
  return () => {
    listeners.delete(callback);
  };
}

/**
 * Call every listener; one that throws does not stop the others nor the bridge.
 * @template T
 * @param {Set<T>} listeners
 * @param {(listener: T) => void} call
 */
function notify(listeners, call) {
  for (const listener of [...listeners]) {
    try {
      call(listener);
    } catch (error) {
      const report = /** @type {any} */ (globalThis).reportError;
      if (typeof report === 'function') report(error);
      else console.error(error);
    }
  }
}

/**
 * @param {number | undefined} value
 * @param {number} fallback
 * @param {string} name
 * @param {number} max
 */
function positiveInteger(value, fallback, name, max) {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new TypeError(`${name}: expected an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

/**
 * @param {number | undefined} value
 * @param {number} fallback
 * @param {string} name
 */
function nonNegative(value, fallback, name) {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`${name}: expected a non-negative number of milliseconds, got ${value}`);
  }
  return value;
}
