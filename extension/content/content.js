/// <reference types="chrome" />
// The isolated-world content script (a classic script: content scripts cannot be ES modules).
// It reports this document's monetization links and attention to the background, and hands the
// receipts the background sends for this document to the page world as an internal DOM event on
// the paid <link>; content/page-world.js turns that into the standard `monetization` event.
// It never sees the reader's token, and sends the background no page URL or title (the
// background takes the origin from the message sender).
(() => {
  'use strict';
  const MARK = '__trickleContentScript';
  if (/** @type {any} */ (globalThis)[MARK]) return;
  /** @type {any} */ (globalThis)[MARK] = true;

  const RECEIPT_EVENT = 'trickle:receipt';
  const FRAME_ASK = 'trickle:frame-ask';
  const FRAME_ALLOW = 'trickle:frame-allow';
  const isTop = window === window.top;
  const page = crypto.randomUUID();
  /** Whether this document may monetize: the top page always; a frame once its parent allowed it. */
  let allowed = isTop;
  let frozen = false;
  let alive = true;
  let lastSent = '';
  /** @type {WeakMap<Element, string>} */
  const ids = new WeakMap();
  /** @type {Map<string, HTMLLinkElement>} */
  const byId = new Map();
  let nextId = 1;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let timer = null;

  /** Mirror of shared/links.js isMonetizationRel (content scripts cannot import modules). */
  /** @param {string | null} rel */
  function isMonetizationRel(rel) {
    return !!rel && rel.toLowerCase().split(/[\t\n\f\r ]+/).includes('monetization');
  }

  /** Mirror of shared/links.js allowsMonetization. @param {string | null} allow */
  function allowsMonetization(allow) {
    if (!allow) return false;
    for (const directive of allow.split(';')) {
      const tokens = directive.trim().split(/\s+/).filter(Boolean);
      if (tokens.length === 0 || tokens[0].toLowerCase() !== 'monetization') continue;
      return !tokens.slice(1).some((t) => t.toLowerCase() === "'none'");
    }
    return false;
  }

  /** @param {Element} el */
  function idOf(el) {
    let id = ids.get(el);
    if (!id) {
      id = (nextId++).toString(36);
      ids.set(el, id);
    }
    return id;
  }

  function scan() {
    byId.clear();
    /** @type {{id: string, href: string, binding: string | null}[]} */
    const links = [];
    for (const el of document.querySelectorAll('link[rel]')) {
      if (!(el instanceof HTMLLinkElement) || !isMonetizationRel(el.getAttribute('rel'))) continue;
      if (links.length >= 50) break;
      const id = idOf(el);
      byId.set(id, el);
      links.push({ id, href: el.href.slice(0, 4096), binding: el.getAttribute('data-trickle-binding')?.slice(0, 4096) ?? null });
    }
    return links;
  }

  /** @param {unknown} message */
  function send(message) {
    try {
      if (!chrome.runtime?.id) throw new Error('extension reloaded');
      chrome.runtime.sendMessage(message).catch(() => {});
    } catch {
      alive = false; // the extension was reloaded or removed: this script is an orphan now
      observer.disconnect();
    }
  }

  /** @param {boolean} [force] */
  function report(force = false) {
    if (!alive || !allowed) return;
    const update = {
      type: 'page/update',
      page,
      links: scan(),
      visible: document.visibilityState === 'visible',
      // A frame's document has focus only while focus is inside the frame: frames follow their
      // visibility (and the reader's idle state) only.
      focused: isTop ? document.hasFocus() : true,
      frozen,
    };
    const key = JSON.stringify(update);
    if (key === lastSent && !force) return;
    // A frame without links stays silent; the top page always says it is here, so that a
    // navigation to a page without links ends the previous page's stream.
    if (!isTop && lastSent === '' && update.links.length === 0) return;
    lastSent = key;
    send(update);
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      report();
    }, 30);
  }

  const observer = new MutationObserver((records) => {
    for (const record of records) {
      if (record.type === 'attributes') {
        if (record.target instanceof HTMLLinkElement) return schedule();
        continue;
      }
      for (const node of [...record.addedNodes, ...record.removedNodes]) {
        if (node instanceof HTMLLinkElement || (node instanceof Element && node.querySelector('link'))) return schedule();
      }
    }
  });
  observer.observe(document, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ['rel', 'href', 'data-trickle-binding'],
  });

  document.addEventListener('visibilitychange', schedule);
  window.addEventListener('focus', schedule);
  window.addEventListener('blur', schedule);
  window.addEventListener('pagehide', (event) => {
    if (event.persisted) {
      frozen = true; // into the back/forward cache: pause
      report();
    } else {
      send({ type: 'page/leave', page }); // navigation or close: stop
      lastSent = '';
    }
  });
  window.addEventListener('pageshow', (event) => {
    if (event.persisted) {
      frozen = false;
      report(true);
    }
  });
  // Page lifecycle: a frozen page (background tab freezing, discarding) is paused like bfcache.
  document.addEventListener('freeze', () => {
    frozen = true;
    report();
  });
  document.addEventListener('resume', () => {
    frozen = false;
    report();
  });
  document.addEventListener('DOMContentLoaded', () => report());
  // Not every change of focus fires an event in every setting (emulated focus, some window
  // managers): while this document has links, re-check its attention once a second. report()
  // sends only when something changed.
  setInterval(() => {
    if (alive && byId.size > 0) report();
  }, 1000);

  // Receipts from the background for this document.
  chrome.runtime.onMessage.addListener((message, sender) => {
    if (sender.id !== chrome.runtime.id || sender.tab) return; // only the background has no tab
    if (!message || message.type !== 'trickle/receipt' || message.page !== page) return;
    if (typeof message.link !== 'string' || typeof message.event !== 'object' || message.event === null) return;
    const link = byId.get(message.link);
    if (!link || !link.isConnected) return;
    link.dispatchEvent(new CustomEvent(RECEIPT_EVENT, { detail: JSON.stringify(message.event) }));
  });

  // One-time payments (PAYMENT-CONTRACT): the page posts {source: "trickle-page", type:
  // "payment-request", …} to its own window. Only this window's own posts, from its own origin,
  // count; every field is checked (shared/payments.js holds the same rules, which the background
  // applies again); the answer is an immediate `payment-ack`, then one `payment-result`, both
  // posted to this window at location.origin only (never "*").
  const PAY_ID = /^[A-Za-z0-9_-]{1,64}$/;
  const PAY_AMOUNT = /^(0|[1-9][0-9]*)(\.[0-9]{1,18})?$/;
  const PAY_CURRENCY = /^[A-Z0-9]{3,12}$/;
  const PAY_ASCII_128 = /^[\x20-\x7e]{1,128}$/;
  const PAY_ASCII_256 = /^[\x20-\x7e]{1,256}$/;
  const PAY_FIELDS = ['source', 'type', 'id', 'amount', 'currency', 'description', 'orderRef', 'paymentPointer', 'binding'];
  const PAY_CODES = ['declined', 'insufficient_funds', 'budget_exhausted', 'site_disabled', 'signed_out', 'invalid_request', 'service_unreachable', 'payee_not_found', 'busy'];

  /** @param {Record<string, unknown>} message */
  function postToPage(message) {
    window.postMessage({ source: 'trickle-extension', ...message }, location.origin);
  }

  /**
   * The request's fields, or a sentence saying what is wrong with them.
   * @param {Record<string, unknown>} d
   * @returns {{request: Record<string, unknown>} | {problem: string}}
   */
  function checkPayment(d) {
    for (const key of Object.keys(d)) if (!PAY_FIELDS.includes(key)) return { problem: `unknown field ${key.slice(0, 40)}` };
    const { id, amount, currency, description, orderRef, paymentPointer, binding } = d;
    if (typeof amount !== 'string' || amount.length > 40 || !PAY_AMOUNT.test(amount) || !/[1-9]/.test(amount)) {
      return { problem: 'amount: a positive decimal string in major units, like "0.25"' };
    }
    if (typeof currency !== 'string' || !PAY_CURRENCY.test(currency)) return { problem: 'currency: an asset code like "USD"' };
    if (description !== undefined && (typeof description !== 'string' || [...description].length > 200)) {
      return { problem: 'description: a string of at most 200 characters' };
    }
    if (typeof orderRef !== 'string' || !PAY_ASCII_128.test(orderRef)) return { problem: 'orderRef: 1-128 printable ASCII characters' };
    if (typeof paymentPointer !== 'string' || paymentPointer.length > 300 || !/^https?:\/\/[^/?#]+/i.test(paymentPointer)) {
      return { problem: 'paymentPointer: an absolute http(s) URL' };
    }
    if (binding !== undefined && binding !== null && (typeof binding !== 'string' || !PAY_ASCII_256.test(binding))) {
      return { problem: 'binding: 1-256 printable ASCII characters' };
    }
    return { request: { id, amount, currency, description: description ?? '', orderRef, paymentPointer, binding: binding ?? null } };
  }

  window.addEventListener('message', (event) => {
    if (event.source !== window || event.origin !== location.origin || event.origin === 'null') return;
    const data = event.data;
    if (!data || typeof data !== 'object' || Array.isArray(data)) return;
    if (data.source !== 'trickle-page' || data.type !== 'payment-request') return;
    const id = data.id;
    if (typeof id !== 'string' || !PAY_ID.test(id)) return; // nothing to answer to
    postToPage({ type: 'payment-ack', id });
    const checked = checkPayment(data);
    if ('problem' in checked) {
      postToPage({ type: 'payment-result', id, ok: false, code: 'invalid_request', message: checked.problem });
      return;
    }
    if (!allowed) {
      postToPage({ type: 'payment-result', id, ok: false, code: 'declined', message: 'payments are allowed from the top page and from frames with allow="monetization" only' });
      return;
    }
    const fail = () => postToPage({ type: 'payment-result', id, ok: false, code: 'service_unreachable', message: 'the Trickle extension is not available' });
    try {
      if (!chrome.runtime?.id) throw new Error('extension reloaded');
      chrome.runtime.sendMessage({ type: 'page/payment', page, request: checked.request }).then(
        (/** @type {any} */ reply) => {
          if (reply && reply.ok === false) {
            postToPage({ type: 'payment-result', id, ok: false, code: 'invalid_request', message: String(reply.error?.message ?? 'invalid request') });
          }
        },
        fail,
      );
    } catch {
      fail();
    }
  });

  // Results of this document's payment requests, from the background only.
  chrome.runtime.onMessage.addListener((message, sender) => {
    if (sender.id !== chrome.runtime.id || sender.tab) return;
    if (!message || message.type !== 'trickle/payment-result' || message.page !== page) return;
    const r = message.result;
    if (!r || typeof r !== 'object' || typeof r.id !== 'string' || !PAY_ID.test(r.id)) return;
    if (r.ok === true && typeof r.receipt === 'string' && typeof r.amountMinor === 'string' && typeof r.currency === 'string' && typeof r.scale === 'number') {
      postToPage({ type: 'payment-result', id: r.id, ok: true, receipt: r.receipt, amountMinor: r.amountMinor, currency: r.currency, scale: r.scale });
    } else if (r.ok === false && PAY_CODES.includes(r.code)) {
      postToPage({ type: 'payment-result', id: r.id, ok: false, code: r.code, message: typeof r.message === 'string' ? r.message : r.code });
    }
  });

  // Frames: a frame monetizes only when its <iframe> element says allow="monetization" and its
  // parent may monetize. The frame asks its parent (postMessage to the parent's own origin, never
  // "*"); the parent's content script answers only a window that is one of its allowed iframes.
  window.addEventListener('message', (event) => {
    const data = event.data;
    if (!data || typeof data !== 'object') return;
    if (data.type === FRAME_ASK && allowed && event.source && event.origin !== 'null') {
      for (const frame of document.querySelectorAll('iframe, frame')) {
        if (!(frame instanceof HTMLIFrameElement || frame instanceof HTMLFrameElement)) continue;
        if (frame.contentWindow !== event.source) continue;
        if (allowsMonetization(frame.getAttribute('allow'))) {
          /** @type {Window} */ (event.source).postMessage({ type: FRAME_ALLOW }, event.origin);
        }
        break;
      }
    } else if (data.type === FRAME_ALLOW && !isTop && !allowed && event.source === window.parent) {
      if (event.origin === parentOrigin()) {
        allowed = true;
        report(true);
      }
    }
  });

  /** The parent frame's origin, as the browser tells it (null if it cannot). */
  function parentOrigin() {
    const ancestors = /** @type {any} */ (location).ancestorOrigins;
    if (ancestors && ancestors.length > 0) return String(ancestors[0]);
    try {
      return document.referrer ? new URL(document.referrer).origin : null;
    } catch {
      return null;
    }
  }

  if (!isTop) {
    const target = parentOrigin();
    if (target && target !== 'null') {
      const ask = () => {
        if (!allowed) window.parent.postMessage({ type: FRAME_ASK }, target);
      };
      ask();
      setTimeout(ask, 1000);
      setTimeout(ask, 3000);
    }
  }

  if (document.readyState !== 'loading') report();
})();
