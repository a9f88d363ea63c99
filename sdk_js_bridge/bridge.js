/**
 * The page bridge, the one file a page imports: monetization events, state, running total and
 * binding here; receipt forwarding and one-time payments in the bridge-*.js files beside it.
 *
 * Browser-only code (README.md "Page bridge"). Every DOM access goes through the `window` option,
 * so tests (and unusual hosts) can inject their own.
 */

import { MAX_BATCH_SIZE, ReceiptForwarder } from './bridge-forwarding.js';
import { PagePayments } from './bridge-payments.js';
import { AMOUNT_PATTERN, BINDING_ATTRIBUTE, BINDING_PATTERN, notify, subscribe } from './bridge-shared.js';

export { MAX_BATCH_SIZE } from './bridge-forwarding.js';
export { PAYMENT_ACK_TIMEOUT_MS, PAYMENT_ERROR_CODES, PaymentError } from './bridge-payments.js';

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

/** @typedef {import('./bridge-forwarding.js').ForwardResult} ForwardResult */
/** @typedef {import('./bridge-forwarding.js').PaidTotal} PaidTotal */
/** @typedef {import('./bridge-forwarding.js').ForwardError} ForwardError */
/** @typedef {import('./bridge-payments.js').PaymentRequest} PaymentRequest */
/** @typedef {import('./bridge-payments.js').PaymentOutcome} PaymentOutcome */
/** @typedef {import('./bridge-payments.js').PaymentErrorCode} PaymentErrorCode */
/** @typedef {import('./bridge-shared.js').BridgeWindow} BridgeWindow */
/** @typedef {import('./bridge-shared.js').BridgeDocument} BridgeDocument */
/** @typedef {import('./bridge-shared.js').BridgeLink} BridgeLink */

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

const LINK_SELECTOR = 'link[rel~="monetization" i]';
const DECIMAL_PATTERN = /^([0-9]+)(?:\.([0-9]+))?$/;
const CURRENCY_PATTERN = /^[A-Za-z0-9]{1,12}$/;

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
  /** @type {string | null} */ #binding = null;
  /** Whether the bridge owns the links' binding attribute: only after setBinding (or the
   * `binding` option). Until then a binding the server rendered into the page is left alone. */
  #bindingManaged = false;
  #stopAfterMs;
  /** @type {ReceiptForwarder} */ #forwarder;
  /** @type {PagePayments} */ #payments;

  /** @type {BridgeState} */ #state = 'unsupported';
  #supported = false;
  #linkCount = 0;
  #receivedAny = false;
  /** @type {Map<string, {minor: bigint, scale: number}>} */ #totals = new Map();

  /** receipts ever queued by this bridge, so a repeated event is queued (and counted) once */
  /** @type {Set<string>} */ #seen = new Set();
  /** @type {unknown} */ #stopTimer = null;
  #destroyed = false;

  /** @type {Set<(event: ReceiptEvent) => void>} */ #receiptListeners = new Set();
  /** @type {Set<(state: BridgeState, previous: BridgeState | null) => void>} */ #stateListeners = new Set();
  /** @type {{disconnect(): void} | null} */ #observer = null;
  #handleEvent = (/** @type {any} */ event) => this.#onEvent(event);
  #handlePageHide = () => this.#forwarder.pageHidden();

  /** @param {BridgeOptions} [options] */
  constructor(options = {}) {
    this.#window = options.window ?? /** @type {BridgeWindow} */ (/** @type {unknown} */ (globalThis));
    this.#document = this.#window.document;
    const endpoint = options.endpoint === undefined ? null : String(options.endpoint);
    const batchSize = positiveInteger(options.batchSize, 20, 'batchSize', MAX_BATCH_SIZE);
    const batchDelayMs = nonNegative(options.batchDelayMs, 2000, 'batchDelayMs');
    this.#stopAfterMs = nonNegative(options.stopAfterMs, 10000, 'stopAfterMs');
    this.#forwarder = new ReceiptForwarder({
      window: this.#window,
      endpoint,
      batchSize,
      batchDelayMs,
      retryInitialMs: nonNegative(options.retryInitialMs, 1000, 'retryInitialMs'),
      retryMaxMs: nonNegative(options.retryMaxMs, 60000, 'retryMaxMs'),
      requestTimeoutMs: nonNegative(options.requestTimeoutMs, 15000, 'requestTimeoutMs'),
      random: options.random ?? Math.random,
      persist: options.persist,
    });
    this.#payments = new PagePayments(this.#window, options.purchaseUrl, {
      firstLink: () => this.#links()[0] ?? null,
      binding: () => this.#binding,
    });
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
    for (const receipt of this.#forwarder.restore()) this.#seen.add(receipt);
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
    return this.#forwarder.paid;
  }

  /** How many receipts wait to be acknowledged by the endpoint. */
  get pendingCount() {
    return this.#forwarder.pendingCount;
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
   * Calls `callback` at once with the current state (`previous` null), then on every change. The
   * first call is what makes a page without an agent show "unsupported": that state never changes.
   * @param {(state: BridgeState, previous: BridgeState | null) => void} callback
   * @returns {() => void}  unsubscribe
   */
  onStateChange(callback) {
    const unsubscribe = subscribe(this.#stateListeners, callback);
    const current = this.#state;
    notify(new Set([callback]), (listener) => listener(current, null));
    return unsubscribe;
  }

  /**
   * @param {(result: ForwardResult) => void} callback  called when the endpoint acknowledges a batch
   * @returns {() => void}  unsubscribe
   */
  onForwarded(callback) {
    return this.#forwarder.onForwarded(callback);
  }

  /**
   * @param {(error: ForwardError) => void} callback  called when a forward fails (it will be retried)
   * @returns {() => void}  unsubscribe
   */
  onError(callback) {
    return this.#forwarder.onError(callback);
  }

  /** Send the waiting receipts now instead of after `batchDelayMs`. */
  flush() {
    this.#forwarder.flush();
  }

  /** Stop listening, observing and forwarding. Unacknowledged receipts stay persisted if `persist` is on. */
  destroy() {
    this.#destroyed = true;
    this.#document?.removeEventListener('monetization', this.#handleEvent, true);
    this.#window.removeEventListener?.('pagehide', this.#handlePageHide);
    this.#observer?.disconnect();
    this.#forwarder.destroy();
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
  requestPayment(request) {
    return this.#payments.request(request);
  }

  /**
   * Hand a one-time receipt to your purchase endpoint again, e.g. the `receipt` of a `PaymentError`
   * when the site could not be reached. Same outcome and errors as `requestPayment`'s last step.
   * @param {{receipt: string, orderRef: string, purchaseUrl?: string, timeoutMs?: number}} submission
   * @returns {Promise<PaymentOutcome>}
   */
  submitPurchase(submission) {
    return this.#payments.submit(submission);
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
    if (receipt !== null && this.#forwarder.enabled) this.#forwarder.enqueue(receipt);
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
