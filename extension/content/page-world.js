// The page-world script (runs in the page's own JavaScript world, at document_start): installs
// the Web Monetization API surface — the MonetizationEvent interface and
// relList.supports('monetization') on <link> elements — and turns the content script's internal
// receipt events into standard, bubbling `monetization` events on the paid <link>.
// It holds no secrets: it only re-dispatches what the content script gives this document.
(() => {
  'use strict';
  const RECEIPT_EVENT = 'trickle:receipt';
  const w = /** @type {any} */ (window);
  if (w.__trickleWebMonetization) return;
  Object.defineProperty(w, '__trickleWebMonetization', { value: true });

  /**
   * @typedef {{currency: string, value: string}} PaymentCurrencyAmount
   * @typedef {EventInit & {amountSent?: PaymentCurrencyAmount, paymentPointer?: string,
   *   incomingPayment?: string | null, receipt?: string | null, amountMinor?: string, scale?: number}} MonetizationEventInit
   */

  class MonetizationEvent extends Event {
    /** @type {PaymentCurrencyAmount} */
    #amountSent;
    /** @type {string} */
    #paymentPointer;
    /** @type {string | null} */
    #incomingPayment;
    /** @type {string | null} */
    #receipt;
    /** @type {string} */
    #amountMinor;
    /** @type {number} */
    #scale;

    /**
     * @param {string} type
     * @param {MonetizationEventInit} [init]
     */
    constructor(type, init = {}) {
      super(type, init);
      const amount = init.amountSent ?? { currency: '', value: '0' };
      this.#amountSent = Object.freeze({ currency: String(amount.currency), value: String(amount.value) });
      this.#paymentPointer = String(init.paymentPointer ?? '');
      this.#incomingPayment = init.incomingPayment ?? null;
      this.#receipt = init.receipt ?? null;
      this.#amountMinor = String(init.amountMinor ?? '0');
      this.#scale = Number(init.scale ?? 0);
    }

    get amountSent() {
      return this.#amountSent;
    }
    get paymentPointer() {
      return this.#paymentPointer;
    }
    get incomingPayment() {
      return this.#incomingPayment;
    }
    get receipt() {
      return this.#receipt;
    }
    /** Non-standard: the receipt's `amt`, minor units as a decimal string. */
    get amountMinor() {
      return this.#amountMinor;
    }
    /** Non-standard: the asset scale of `amountMinor`. */
    get scale() {
      return this.#scale;
    }
  }

  const Event_ = typeof w.MonetizationEvent === 'function' ? w.MonetizationEvent : MonetizationEvent;
  if (Event_ === MonetizationEvent) {
    Object.defineProperty(w, 'MonetizationEvent', { value: MonetizationEvent, writable: true, configurable: true });
  }

  // relList.supports('monetization') → true, for the relList of <link> elements only.
  const relListDescriptor = Object.getOwnPropertyDescriptor(HTMLLinkElement.prototype, 'relList');
  const nativeSupports = DOMTokenList.prototype.supports;
  if (relListDescriptor?.get && nativeSupports) {
    const nativeGet = relListDescriptor.get;
    /** @type {WeakSet<DOMTokenList>} */
    const linkRelLists = new WeakSet();
    /** @type {DOMTokenList | null} */
    let prototypeList = null;
    Object.defineProperty(HTMLLinkElement.prototype, 'relList', {
      ...relListDescriptor,
      get() {
        if (this === HTMLLinkElement.prototype) {
          // So that HTMLLinkElement.prototype.relList.supports('monetization') also answers.
          prototypeList ??= nativeGet.call(document.createElement('link'));
          linkRelLists.add(/** @type {DOMTokenList} */ (prototypeList));
          return prototypeList;
        }
        const list = nativeGet.call(this);
        linkRelLists.add(list);
        return list;
      },
    });
    Object.defineProperty(DOMTokenList.prototype, 'supports', {
      value: /** @this {DOMTokenList} @param {string} token */ function supports(token) {
        if (linkRelLists.has(this) && String(token).toLowerCase() === 'monetization') return true;
        return nativeSupports.call(this, token);
      },
      writable: true,
      configurable: true,
      enumerable: true,
    });
  }

  /** @param {unknown} v @returns {v is string} */
  const isStr = (v) => typeof v === 'string';

  document.addEventListener(
    RECEIPT_EVENT,
    (event) => {
      const link = event.target;
      if (!(link instanceof HTMLLinkElement) || !(event instanceof CustomEvent) || !isStr(event.detail)) return;
      event.stopImmediatePropagation();
      /** @type {any} */
      let d;
      try {
        d = JSON.parse(event.detail);
      } catch {
        return;
      }
      if (!d || !d.amountSent || !isStr(d.amountSent.currency) || !isStr(d.amountSent.value)) return;
      if (!isStr(d.paymentPointer) || !isStr(d.receipt) || !isStr(d.amountMinor) || typeof d.scale !== 'number') return;
      link.dispatchEvent(
        new Event_('monetization', {
          bubbles: true,
          amountSent: { currency: d.amountSent.currency, value: d.amountSent.value },
          paymentPointer: d.paymentPointer,
          incomingPayment: null,
          receipt: d.receipt,
          amountMinor: d.amountMinor,
          scale: d.scale,
        }),
      );
    },
    true,
  );
})();
