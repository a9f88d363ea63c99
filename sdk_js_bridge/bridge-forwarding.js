/**
 * The page bridge's receipt forwarding: receipts queued, POSTed to the site's endpoint in batches,
 * each batch retried unchanged with backoff until a 2xx acknowledges it, and (with `persist`) kept
 * in sessionStorage until then. Protocol: README.md "Forwarding protocol". Used by bridge.js.
 */

import { AMOUNT_PATTERN, notify, postJson, subscribe } from './bridge-shared.js';

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
 * What a forwarder needs: the bridge's options, already checked.
 * @typedef {object} ForwarderOptions
 * @property {import('./bridge-shared.js').BridgeWindow} window
 * @property {string | null} endpoint  null: nothing is forwarded
 * @property {number} batchSize
 * @property {number} batchDelayMs
 * @property {number} retryInitialMs
 * @property {number} retryMaxMs
 * @property {number} requestTimeoutMs
 * @property {() => number} random
 * @property {boolean | string | undefined} persist
 */

/** The most receipts one request carries (the `batchSize` option's upper bound). */
export const MAX_BATCH_SIZE = 100;

export class ReceiptForwarder {
  /** @type {import('./bridge-shared.js').BridgeWindow} */ #window;
  /** @type {string | null} */ #endpoint;
  #batchSize; #batchDelayMs; #retryInitialMs; #retryMaxMs; #requestTimeoutMs;
  /** @type {() => number} */ #random;
  /** @type {string | null} */ #storageKey = null;
  /** @type {PaidTotal | null} */ #paid = null;

  /** the batch being sent; it is retried unchanged until a 2xx acknowledges it */
  /** @type {string[] | null} */ #batch = null;
  /** @type {string[]} */ #waiting = [];
  #inFlight = false;
  #failures = 0;
  /** @type {unknown} */ #flushTimer = null;
  #destroyed = false;

  /** @type {Set<(result: ForwardResult) => void>} */ #forwardListeners = new Set();
  /** @type {Set<(error: ForwardError) => void>} */ #errorListeners = new Set();

  /** @param {ForwarderOptions} options */
  constructor(options) {
    this.#window = options.window;
    this.#endpoint = options.endpoint;
    this.#batchSize = options.batchSize;
    this.#batchDelayMs = options.batchDelayMs;
    this.#retryInitialMs = options.retryInitialMs;
    this.#retryMaxMs = options.retryMaxMs;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    this.#random = options.random;
    if (options.persist && this.#endpoint !== null) {
      this.#storageKey = typeof options.persist === 'string' ? options.persist : `trickle-bridge:${this.#endpoint}`;
    }
  }

  /** Whether receipts are forwarded at all (the bridge has an endpoint). */
  get enabled() {
    return this.#endpoint !== null;
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
   * @param {(result: ForwardResult) => void} callback
   * @returns {() => void}  unsubscribe
   */
  onForwarded(callback) {
    return subscribe(this.#forwardListeners, callback);
  }

  /**
   * @param {(error: ForwardError) => void} callback
   * @returns {() => void}  unsubscribe
   */
  onError(callback) {
    return subscribe(this.#errorListeners, callback);
  }

  /**
   * Queue a receipt (the bridge passes each distinct one once).
   * @param {string} receipt
   */
  enqueue(receipt) {
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

  /** Send the waiting receipts now, without waiting out a delay or a backoff. */
  flush() {
    this.#clearFlushTimer();
    this.#failures = 0;
    void this.#send(false);
  }

  /** The page is being unloaded: send what waits at once, with keepalive. */
  pageHidden() {
    if (this.#endpoint === null || this.pendingCount === 0) return;
    this.#clearFlushTimer();
    void this.#send(true);
  }

  /** Stop sending; what waits stays persisted if `persist` is on. */
  destroy() {
    this.#destroyed = true;
    this.#clearFlushTimer();
  }

  /**
   * Queue again what a previous page of this visit left unacknowledged in sessionStorage.
   * @returns {string[]}  the receipts taken back (each once), for the bridge to count as seen
   */
  restore() {
    if (this.#storageKey === null) return [];
    /** @type {unknown} */
    let saved = null;
    try {
      saved = JSON.parse(this.#storage()?.getItem(this.#storageKey) ?? 'null');
    } catch {
      saved = null;
    }
    if (!Array.isArray(saved)) return [];
    /** @type {Set<string>} */
    const restored = new Set();
    for (const receipt of saved) {
      if (typeof receipt === 'string' && !restored.has(receipt)) {
        restored.add(receipt);
        this.#waiting.push(receipt);
      }
    }
    if (this.#waiting.length > 0) this.#schedule(0);
    return [...restored];
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
    this.#inFlight = true;
    /** @type {ForwardError | null} */
    let failure = null;
    /** @type {unknown} */
    let body = null;
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = this.#window.setTimeout(() => controller?.abort(), this.#requestTimeoutMs);
    try {
      const answer = await postJson(this.#window, this.#endpoint, { receipts: batch }, { signal: controller?.signal, keepalive });
      body = answer.body;
      if (!answer.ok) {
        const error = /** @type {any} */ (body)?.error;
        failure = {
          status: answer.status,
          code: typeof error?.code === 'string' ? error.code : `http_${answer.status}`,
          message: typeof error?.message === 'string' ? error.message : `the endpoint answered ${answer.status}`,
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
