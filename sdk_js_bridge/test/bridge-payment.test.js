// bridge.requestPayment (one-time payments) on a tiny fake page: a window that delivers its own
// postMessage calls as `message` events, a scripted stand-in for the extension, and either a manual
// clock with a scripted fetch or the real purchase endpoint (purchases.js) on an ephemeral port.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { PAYMENT_ACK_TIMEOUT_MS, PAYMENT_ERROR_CODES, PaymentError, createBridge } from '../bridge.js';
import { KeySet } from '../keys.js';
import { createPurchaseHandler } from '../purchases.js';
import { FakeClock, settle } from '../testing/fake-clock.js';
import { serve, sessionOf } from '../testing/http-server.js';
import { claims, createTestIssuer } from '../testing/receipt-signer.js';

const ORIGIN = 'https://blog.example';
const PAYEE = 'https://trickle.test/p/alice';

class FakeLink {
  /** @param {Record<string, string>} attributes */
  constructor(attributes) {
    this.attributes = new Map(Object.entries(attributes));
  }

  /** @param {string} name */
  getAttribute(name) {
    return this.attributes.get(name) ?? null;
  }

  /**
   * @param {string} name
   * @param {string} value
   */
  setAttribute(name, value) {
    this.attributes.set(name, value);
  }

  /** @param {string} name */
  removeAttribute(name) {
    this.attributes.delete(name);
  }
}

class FakeDocument extends EventTarget {
  /** @type {FakeLink[]} */
  links = [];

  querySelectorAll() {
    return this.links;
  }

  createElement() {
    return { relList: { supports: () => false } };
  }
}

/**
 * A page window: postMessage delivers a `message` event to this window (as a browser does, later),
 * with `source` this window and `origin` the page's.
 */
class FakeWindow extends EventTarget {
  document = new FakeDocument();
  /** @type {unknown} */
  MonetizationEvent = class MonetizationEvent {};
  /** @type {{message: any, targetOrigin: string}[]} */
  posted = [];
  /** @type {((url: string, init: any) => Promise<any>) | undefined} */
  fetch;

  /**
   * @param {{origin?: string, timers?: {setTimeout: (callback: () => void, ms: number) => unknown, clearTimeout: (id: any) => void}}} [options]
   */
  constructor({ origin = ORIGIN, timers = undefined } = {}) {
    super();
    this.location = { origin, href: `${origin}/articles/42` };
    const clock = timers ?? { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
    this.setTimeout = (/** @type {() => void} */ callback, /** @type {number} */ ms) => clock.setTimeout(callback, ms);
    this.clearTimeout = (/** @type {any} */ id) => clock.clearTimeout(id);
  }

  /**
   * @param {any} message
   * @param {string} targetOrigin
   */
  postMessage(message, targetOrigin) {
    assert.notEqual(targetOrigin, '*', 'never post to "*"');
    this.posted.push({ message, targetOrigin });
    if (targetOrigin !== this.location.origin) return; // a browser drops it
    this.deliver(message, { source: this, origin: this.location.origin });
  }

  /**
   * Deliver a `message` event as the browser would, from any source and origin.
   * @param {unknown} data
   * @param {{source: unknown, origin: string}} from
   */
  deliver(data, { source, origin }) {
    const copy = structuredClone(data);
    queueMicrotask(() => this.dispatchEvent(Object.assign(new Event('message'), { data: copy, source, origin })));
  }

  /** The requests the page posted for the extension. */
  get requests() {
    return this.posted.filter(({ message }) => message?.source === 'trickle-page').map(({ message }) => message);
  }

  /**
   * Answer as the extension's content script does (same window, page origin).
   * @param {Record<string, unknown>} message
   */
  extensionSays(message) {
    this.deliver({ source: 'trickle-extension', ...message }, { source: this, origin: this.location.origin });
  }

  /**
   * A stand-in for the extension: acks each request at once, then answers with `answer(request)`.
   * @param {(request: any) => Record<string, unknown> | null} answer  null: ack only
   */
  installExtension(answer) {
    this.addEventListener('message', (/** @type {any} */ event) => {
      const data = event.data;
      if (data?.source !== 'trickle-page' || data.type !== 'payment-request') return;
      this.extensionSays({ type: 'payment-ack', id: data.id });
      const result = answer(data);
      if (result !== null) this.extensionSays({ type: 'payment-result', id: data.id, ...result });
    });
  }
}

/**
 * @param {FakeWindow} win
 * @param {Record<string, string>} [attributes]
 */
function addLink(win, attributes = { rel: 'monetization', href: PAYEE, 'data-trickle-binding': 'binding-7' }) {
  const link = new FakeLink(attributes);
  win.document.links.push(link);
  return link;
}

const REQUEST = Object.freeze({ amount: '0.25', currency: 'USD', description: 'Article 42', orderRef: 'article-42' });

/**
 * @param {Promise<unknown>} promise
 * @param {string} code
 * @param {string | null} [detail]
 */
async function rejectsWith(promise, code, detail) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof PaymentError, `expected a PaymentError, got ${error}`);
    assert.equal(error.code, code, error.message);
    assert.ok(PAYMENT_ERROR_CODES.includes(error.code));
    if (detail !== undefined) assert.equal(error.detail, detail);
    return true;
  });
}

describe('asking the extension', () => {
  test('the request goes to this window only, at the page origin, with the contract fields', async () => {
    const clock = new FakeClock();
    const win = new FakeWindow({ timers: clock });
    addLink(win);
    const bridge = createBridge({ window: win });
    const pending = bridge.requestPayment(REQUEST);
    pending.catch(() => {});
    await settle();
    assert.equal(win.posted.length, 1);
    const { message, targetOrigin } = win.posted[0];
    assert.equal(targetOrigin, ORIGIN);
    assert.match(message.id, /^[A-Za-z0-9_-]{1,64}$/);
    assert.deepEqual(message, {
      source: 'trickle-page', type: 'payment-request', id: message.id, amount: '0.25', currency: 'USD',
      description: 'Article 42', orderRef: 'article-42', paymentPointer: PAYEE, binding: 'binding-7',
    });
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS);
    await rejectsWith(pending, 'no_extension');
  });

  test('explicit paymentPointer and binding win; without any binding the member is left out', async () => {
    const clock = new FakeClock();
    const win = new FakeWindow({ timers: clock });
    addLink(win, { rel: 'monetization', href: PAYEE });
    const bridge = createBridge({ window: win });
    const first = bridge.requestPayment(REQUEST);
    first.catch(() => {});
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS);
    await rejectsWith(first, 'no_extension');
    const second = bridge.requestPayment({ ...REQUEST, paymentPointer: 'https://trickle.test/p/bob', binding: 'b-2' });
    second.catch(() => {});
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS);
    await rejectsWith(second, 'no_extension');
    const [a, b] = win.requests;
    assert.equal(Object.hasOwn(a, 'binding'), false);
    assert.equal(a.paymentPointer, PAYEE);
    assert.deepEqual([b.paymentPointer, b.binding], ['https://trickle.test/p/bob', 'b-2']);
    assert.notEqual(a.id, b.id);
  });

  test('without MonetizationEvent there is no extension: rejected at once, nothing posted', async () => {
    const win = new FakeWindow();
    win.MonetizationEvent = undefined;
    addLink(win);
    await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), 'no_extension');
    assert.equal(win.posted.length, 0);
  });

  test('no ack within 1 s is no_extension; an ack keeps the request waiting for the reader', async () => {
    const clock = new FakeClock();
    const win = new FakeWindow({ timers: clock });
    addLink(win);
    const bridge = createBridge({ window: win });
    let settled = false;
    const pending = bridge.requestPayment({ ...REQUEST, timeoutMs: 5000 });
    pending.catch(() => {}).finally(() => { settled = true; });
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS - 1);
    assert.equal(settled, false);
    win.extensionSays({ type: 'payment-ack', id: win.requests[0].id });
    await clock.advance(4000); // the prompt is open: well past the ack deadline, 1 ms before the timeout
    assert.equal(settled, false);
    await clock.advance(1);
    await rejectsWith(pending, 'timeout');
    assert.equal(clock.timers.size, 0, 'no timer left behind');
  });

  test('each failure code of the extension is passed on; an unknown code counts as declined', async () => {
    const codes = ['declined', 'insufficient_funds', 'budget_exhausted', 'site_disabled', 'signed_out', 'invalid_request',
      'service_unreachable', 'payee_not_found', 'busy', 'something_new'];
    for (const code of codes) {
      const win = new FakeWindow();
      addLink(win);
      win.installExtension(() => ({ ok: false, code, message: `because ${code}` }));
      await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), code === 'something_new' ? 'declined' : code);
    }
  });

  test('messages from another window, another origin or for another id are ignored', async () => {
    const clock = new FakeClock();
    const win = new FakeWindow({ timers: clock });
    addLink(win);
    let fetched = 0;
    win.fetch = async () => {
      fetched += 1;
      return { ok: false, status: 422, json: async () => ({ error: { code: 'bad_signature', message: 'forged' } }) };
    };
    const pending = createBridge({ window: win }).requestPayment(REQUEST);
    pending.catch(() => {});
    await settle();
    const { id } = win.requests[0];
    const fake = { source: 'trickle-extension', type: 'payment-result', id, ok: false, code: 'insufficient_funds' };
    win.deliver(fake, { source: {}, origin: ORIGIN }); // an iframe of the same origin
    win.deliver(fake, { source: win, origin: 'https://evil.example' });
    win.deliver({ ...fake, id: 'another-request' }, { source: win, origin: ORIGIN });
    win.deliver({ ...fake, source: 'trickle-page' }, { source: win, origin: ORIGIN });
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS);
    await rejectsWith(pending, 'no_extension'); // none of them counted as an answer, nor as an ack
    assert.equal(fetched, 0);
  });

  test('one request at a time per bridge: a second one while the first waits is busy', async () => {
    const clock = new FakeClock();
    const win = new FakeWindow({ timers: clock });
    addLink(win);
    const bridge = createBridge({ window: win });
    const first = bridge.requestPayment(REQUEST);
    first.catch(() => {});
    await rejectsWith(bridge.requestPayment({ ...REQUEST, orderRef: 'article-43' }), 'busy');
    await clock.advance(PAYMENT_ACK_TIMEOUT_MS);
    await rejectsWith(first, 'no_extension');
    assert.equal(win.requests.length, 1);
  });

  /** @type {[string, Record<string, unknown>][]} */
  const invalid = [
    ['an amount as a number', { amount: 0.25 }],
    ['an amount of zero', { amount: '0.00' }],
    ['a negative amount', { amount: '-1' }],
    ['an amount with an exponent', { amount: '1e-2' }],
    ['an amount ending in a dot', { amount: '1.' }],
    ['a lowercase currency', { currency: 'usd' }],
    ['an empty orderRef', { orderRef: '' }],
    ['an orderRef of 129 chars', { orderRef: 'o'.repeat(129) }],
    ['an orderRef with a newline', { orderRef: 'a\nb' }],
    ['a non-ASCII orderRef', { orderRef: 'café' }],
    ['a description of 201 chars', { description: 'd'.repeat(201) }],
    ['a purchaseUrl on another origin', { purchaseUrl: 'https://evil.example/collect' }],
    ['a paymentPointer that is not a URL', { paymentPointer: '$alice' }],
    ['a zero timeout', { timeoutMs: 0 }],
  ];
  for (const [name, change] of invalid) {
    test(`${name} is invalid_request, nothing posted`, async () => {
      const win = new FakeWindow();
      addLink(win);
      await rejectsWith(createBridge({ window: win }).requestPayment(/** @type {any} */ ({ ...REQUEST, ...change })), 'invalid_request');
      assert.equal(win.posted.length, 0);
    });
  }

  test('no monetization link and no paymentPointer is invalid_request', async () => {
    const win = new FakeWindow();
    await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), 'invalid_request');
  });
});

describe('handing the receipt to the site', () => {
  test('a 5xx or a network failure is retried with the same receipt; then the site answer resolves', async () => {
    const win = new FakeWindow();
    addLink(win);
    win.installExtension(() => ({ ok: true, receipt: 'the.receipt.jws', amountMinor: '250000000', currency: 'USD', scale: 9 }));
    /** @type {any[]} */
    const bodies = [];
    let calls = 0;
    win.fetch = async (url, init) => {
      calls += 1;
      bodies.push({ url, body: JSON.parse(init.body), credentials: init.credentials, type: init.headers['Content-Type'] });
      if (calls === 1) throw new TypeError('network down');
      if (calls === 2) return { ok: false, status: 503, json: async () => ({ error: { code: 'internal_error', message: 'x' } }) };
      return { ok: true, status: 200, json: async () => ({ code: 'ok', order_ref: 'article-42', amount_minor: '250000000', currency: 'USD', scale: 9 }) };
    };
    const outcome = await createBridge({ window: win, purchaseUrl: '/shop/buy' }).requestPayment(REQUEST);
    assert.deepEqual(outcome, { code: 'ok', order_ref: 'article-42', amount_minor: '250000000', currency: 'USD', scale: 9 });
    assert.equal(calls, 3);
    for (const sent of bodies) {
      assert.deepEqual(sent, { url: `${ORIGIN}/shop/buy`, body: { receipt: 'the.receipt.jws', order_ref: 'article-42' }, credentials: 'same-origin', type: 'application/json' });
    }
  });

  test('a site that keeps failing: site_rejected with the receipt, which submitPurchase hands over later', async () => {
    const win = new FakeWindow();
    addLink(win);
    win.installExtension(() => ({ ok: true, receipt: 'kept.receipt.jws', amountMinor: '1', currency: 'USD', scale: 9 }));
    let up = false;
    win.fetch = async () => {
      if (!up) throw new TypeError('network down');
      return { ok: true, status: 200, json: async () => ({ code: 'ok', order_ref: 'article-42', amount_minor: '250000000', currency: 'USD', scale: 9 }) };
    };
    const bridge = createBridge({ window: win });
    /** @type {PaymentError | null} */
    let failure = null;
    await assert.rejects(bridge.requestPayment(REQUEST), (error) => {
      failure = /** @type {PaymentError} */ (error);
      return true;
    });
    assert.ok(failure !== null);
    const { code, detail, receipt } = /** @type {PaymentError} */ (failure);
    assert.deepEqual({ code, detail, receipt }, { code: 'site_rejected', detail: 'network_error', receipt: 'kept.receipt.jws' });
    up = true;
    assert.equal((await bridge.submitPurchase({ receipt: 'kept.receipt.jws', orderRef: 'article-42' })).code, 'ok');
  });

  test('a 2xx that is not a purchase of this order is not believed', async () => {
    const win = new FakeWindow();
    addLink(win);
    win.installExtension(() => ({ ok: true, receipt: 'r.r.r' }));
    win.fetch = async () => ({ ok: true, status: 200, json: async () => ({ code: 'ok', order_ref: 'article-43', amount_minor: '1', currency: 'USD', scale: 9 }) });
    await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), 'site_rejected', 'invalid_answer');
  });
});

describe('with the real purchase endpoint', () => {
  const issuer = createTestIssuer();
  /** @type {{origin: string, close: () => Promise<void>}} */
  let site;
  let origin = '';
  /** @type {ReturnType<typeof createPurchaseHandler>} */
  let handler;

  before(async () => {
    const keys = await KeySet.fromJwks(issuer.jwks);
    site = await serve((req, res) => handler(req, res));
    origin = site.origin;
    handler = createPurchaseHandler({
      keys, issuer: 'https://trickle.test', origin, payees: [PAYEE],
      sessionOf,
      bindingOf: (session) => `binding-of-${session}`,
      priceOf: (orderRef) => (orderRef.startsWith('article-') ? { amountMinor: 250000000n, currency: 'USD' } : null),
    });
  });
  after(() => site.close());

  /**
   * A page of this site for one visitor (its cookie sent with same-origin fetches).
   * @param {string} session
   */
  function page(session) {
    const win = new FakeWindow({ origin });
    addLink(win, { rel: 'monetization', href: PAYEE, 'data-trickle-binding': `binding-of-${session}` });
    win.fetch = (url, init) => fetch(url, { ...init, headers: { ...init.headers, Cookie: `session=${session}` } });
    return win;
  }

  /**
   * The one-time receipt the service would return for a request (docs/payments.md).
   * @param {any} request
   * @param {Record<string, unknown>} [overrides]
   */
  function receiptFor(request, overrides = {}) {
    const now = Math.floor(Date.now() / 1000);
    return issuer.sign(claims({
      aud: origin, pay: request.paymentPointer, sid: `s${request.id}`.slice(0, 64), seq: 1, amt: '250000000', tot: '250000000',
      iat: now, exp: now + 300, jti: `j${request.id}`.slice(0, 64), otp: true, ord: request.orderRef, bnd: request.binding,
      ...overrides,
    }));
  }

  test('approve: the site verifies the receipt and records the purchase', async () => {
    const win = page('reader-1');
    win.installExtension((request) => ({ ok: true, receipt: receiptFor(request), amountMinor: '250000000', currency: 'USD', scale: 9 }));
    const outcome = await createBridge({ window: win }).requestPayment(REQUEST);
    assert.deepEqual(outcome, { code: 'ok', order_ref: 'article-42', amount_minor: '250000000', currency: 'USD', scale: 9 });
    assert.equal(await handler.hasPurchased('reader-1', 'article-42'), true);
  });

  test('decline: nothing posted to the site, nothing bought', async () => {
    const win = page('reader-2');
    let fetched = 0;
    const realFetch = /** @type {NonNullable<FakeWindow['fetch']>} */ (win.fetch);
    win.fetch = (url, init) => {
      fetched += 1;
      return realFetch(url, init);
    };
    win.installExtension(() => ({ ok: false, code: 'declined', message: 'the reader declined' }));
    await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), 'declined');
    assert.equal(fetched, 0);
    assert.equal(await handler.hasPurchased('reader-2', 'article-42'), false);
  });

  test('a page script faking the result with a forged receipt buys nothing: site_rejected bad_signature', async () => {
    const win = page('reader-3');
    const forger = createTestIssuer();
    win.installExtension(() => null); // the extension acks; the reader has not answered yet
    const pending = createBridge({ window: win }).requestPayment(REQUEST);
    await settle();
    const request = win.requests[0];
    const now = Math.floor(Date.now() / 1000);
    const forged = forger.sign(claims({ aud: origin, pay: PAYEE, seq: 1, amt: '250000000', tot: '250000000', iat: now, exp: now + 300, otp: true, ord: 'article-42', bnd: request.binding }));
    // A script on the page posts a "result" as if it were the extension: same window, same origin.
    win.postMessage({ source: 'trickle-extension', type: 'payment-result', id: request.id, ok: true, receipt: forged }, origin);
    await rejectsWith(pending, 'site_rejected', 'bad_signature');
    assert.equal(await handler.hasPurchased('reader-3', 'article-42'), false);
  });

  test('a replayed receipt does not unlock a second order, nor the same order for another visitor', async () => {
    const payer = page('reader-4');
    /** @type {string} */
    let paid = '';
    payer.installExtension((request) => {
      paid = receiptFor(request);
      return { ok: true, receipt: paid };
    });
    assert.equal((await createBridge({ window: payer }).requestPayment(REQUEST)).code, 'ok');
    // The same page replays the receipt for another order.
    const replay = createBridge({ window: payer });
    await rejectsWith(replay.submitPurchase({ receipt: paid, orderRef: 'article-99' }), 'site_rejected', 'order_mismatch');
    assert.equal(await handler.hasPurchased('reader-4', 'article-99'), false);
    // Another visitor replays it: their binding differs.
    await rejectsWith(createBridge({ window: page('reader-5') }).submitPurchase({ receipt: paid, orderRef: 'article-42' }), 'site_rejected', 'binding_mismatch');
    assert.equal(await handler.hasPurchased('reader-5', 'article-42'), false);
  });

  test('a receipt below the price is site_rejected amount_too_low', async () => {
    const win = page('reader-6');
    win.installExtension((request) => ({ ok: true, receipt: receiptFor(request, { amt: '1', tot: '1' }) }));
    await rejectsWith(createBridge({ window: win }).requestPayment(REQUEST), 'site_rejected', 'amount_too_low');
    assert.equal(await handler.hasPurchased('reader-6', 'article-42'), false);
  });
});
