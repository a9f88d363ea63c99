// The page-world script (runs in the page's own JavaScript world, at document_start): installs
// the Web Monetization API surface — the MonetizationEvent interface, the `onmonetization` event
// handler (IDL attribute on window, document and elements; content attribute on elements) and
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

  installEventHandler(w, 'monetization');

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

  /**
   * The `on<type>` event handler as HTML defines event handlers, for an event type HTML does not
   * have (the Web Monetization spec adds `onmonetization` to GlobalEventHandlers):
   * - the IDL attribute on window, documents and elements: a function (or any object) is the
   *   handler, anything else is null; setting it keeps the listener's place among the target's
   *   listeners, null removes it;
   * - the content attribute on elements (`<link onmonetization="…">`): its text is the body of a
   *   function of `event`, with `this` the element and the document, the element's form and the
   *   element in scope; compiled when first needed (a syntax error is reported and the handler
   *   is null); changing or removing the attribute changes the handler;
   * - a handler that returns `false` cancels the event (preventDefault).
   * Compiling the content attribute needs `new Function`: under a page CSP without
   * 'unsafe-eval' it is reported as an error, and only the IDL attribute works.
   * @param {any} win
   * @param {string} type
   */
  function installEventHandler(win, type) {
    const name = `on${type}`;
    if (name in win.HTMLElement.prototype) return; // the browser has it
    /**
     * @typedef {{value: unknown, listener: ((event: Event) => void) | null, source: string | null,
     *   compiled: unknown}} Slot
     *   value: undefined = the content attribute decides; compiled: the attribute's function
     */
    /** @type {WeakMap<object, Slot>} */
    const slots = new WeakMap();
    /** @param {object} target @returns {Slot} */
    const slotOf = (target) => {
      let slot = slots.get(target);
      if (!slot) {
        slot = { value: undefined, listener: null, source: null, compiled: null };
        slots.set(target, slot);
      }
      return slot;
    };
    /** @param {unknown} target @returns {target is Element} */
    const isElement = (target) => target instanceof win.Element;

    /** @param {Element} element @param {Slot} slot @param {string} body */
    const compile = (element, slot, body) => {
      if (slot.source !== body) {
        slot.source = body;
        slot.compiled = compileHandler(win, name, element, body);
      }
      return slot.compiled;
    };

    /** The handler now: the IDL value, else the content attribute's function, else null. @param {object} target */
    const handlerOf = (target) => {
      const slot = slotOf(target);
      if (slot.value !== undefined) return slot.value;
      if (isElement(target) && target.hasAttribute(name)) return compile(target, slot, /** @type {string} */ (target.getAttribute(name)));
      return null;
    };

    /** @param {EventTarget} target */
    const activate = (target) => {
      const slot = slotOf(target);
      if (slot.listener) return;
      slot.listener = function (event) {
        const handler = handlerOf(target);
        if (typeof handler !== 'function') return;
        if (handler.call(this, event) === false) event.preventDefault();
      };
      target.addEventListener(type, slot.listener);
    };
    /** @param {EventTarget} target */
    const deactivate = (target) => {
      const slot = slotOf(target);
      if (slot.listener) target.removeEventListener(type, slot.listener);
      slot.listener = null;
    };

    const descriptor = {
      configurable: true,
      enumerable: true,
      /** @this {any} */
      get() {
        return handlerOf(this);
      },
      /** @this {any} @param {unknown} value */
      set(value) {
        const slot = slotOf(this);
        slot.value = (typeof value === 'object' && value !== null) || typeof value === 'function' ? value : null;
        if (slot.value === null) deactivate(this);
        else activate(this);
      },
    };
    for (const proto of [win.HTMLElement?.prototype, win.SVGElement?.prototype, win.MathMLElement?.prototype, win.Document?.prototype]) {
      if (proto && !Object.hasOwn(proto, name)) Object.defineProperty(proto, name, descriptor);
    }
    Object.defineProperty(win, name, descriptor);

    watchAttribute(
      win,
      type,
      name,
      // Set or changed after load, the content attribute decides again (the IDL value is
      // dropped); removed, the handler is null.
      (element) => {
        slotOf(element).value = undefined;
        if (element.hasAttribute(name)) activate(element);
        else deactivate(element);
      },
      (element) => {
        if (slotOf(element).value === undefined) activate(element);
      },
    );
  }

  /**
   * The function HTML makes of an event handler content attribute: `body` is the body of a
   * function of `event`, with the document, the element's form and the element in scope and
   * `this` the element. A syntax error is reported (as a page error) and gives null.
   * @param {any} win
   * @param {string} name
   * @param {Element} element
   * @param {string} body
   * @returns {unknown}
   */
  function compileHandler(win, name, element, body) {
    try {
      const form = /** @type {any} */ (element).form ?? null;
      // Sloppy mode (a Function body), so that `with` gives the scope chain HTML gives handlers.
      const make = new win.Function(
        'document$',
        'form$',
        'element$',
        `return function ${name}(event) {\nwith (document$) { with (form$ || {}) { with (element$) {\n${body}\n} } }\n};`,
      );
      return make(element.ownerDocument, form, element);
    } catch (error) {
      if (typeof win.reportError === 'function') win.reportError(error);
      return null;
    }
  }

  /**
   * Watch the content attribute `name` on every element: `changed(element)` when it is set,
   * changed or removed after load; `travelling(element)` for each element on the path of a `type`
   * event that has it, before the event travels (a listener added then is called when the event
   * reaches that element), which covers elements parsed with the attribute and an attribute set
   * just before an event.
   * @param {any} win
   * @param {string} type
   * @param {string} name
   * @param {(element: Element) => void} changed
   * @param {(element: Element) => void} travelling
   */
  function watchAttribute(win, type, name, changed, travelling) {
    const observer = new win.MutationObserver((/** @type {MutationRecord[]} */ records) => {
      for (const record of records) if (record.target instanceof win.Element) changed(/** @type {Element} */ (record.target));
    });
    observer.observe(win.document, { subtree: true, attributes: true, attributeFilter: [name] });
    win.addEventListener(
      type,
      (/** @type {Event} */ event) => {
        for (const node of event.composedPath()) {
          if (node instanceof win.Element && /** @type {Element} */ (node).hasAttribute(name)) travelling(/** @type {Element} */ (node));
        }
      },
      true,
    );
  }
})();
