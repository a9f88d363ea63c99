// The page bridge (bridge.js) on a tiny fake page: an EventTarget document with <link> objects, a
// MutationObserver stand-in, a manual clock and a scripted fetch. No jsdom, no real timers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { Bridge, MAX_BATCH_SIZE, createBridge, formatMinor } from '../bridge.js';
import { FakeClock, settle } from '../testing/fake-clock.js';

const SELECTOR = 'link[rel~="monetization" i]';

class FakeLink {
  /** @type {Map<string, string>} */
  attributes = new Map();

  /**
   * @param {FakeDocument} owner
   * @param {Record<string, string>} attributes
   */
  constructor(owner, attributes) {
    this.owner = owner;
    for (const [name, value] of Object.entries(attributes)) this.attributes.set(name, value);
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
    this.attributes.set(name, String(value));
    this.owner.mutated();
  }

  /** @param {string} name */
  removeAttribute(name) {
    this.attributes.delete(name);
    this.owner.mutated();
  }
}

class FakeDocument extends EventTarget {
  /** @type {FakeLink[]} */
  links = [];
  /** @type {Set<() => void>} */
  observers = new Set();
  documentElement = {};
  supportsRel = false;

  /** @param {string} selector */
  querySelectorAll(selector) {
    assert.equal(selector, SELECTOR);
    return this.links.filter((link) => (link.getAttribute('rel') ?? '').toLowerCase().split(/\s+/).includes('monetization'));
  }

  /** @param {string} name */
  createElement(name) {
    assert.equal(name, 'link');
    return { relList: { supports: (/** @type {string} */ token) => this.supportsRel && token === 'monetization' } };
  }

  /**
   * @param {Record<string, string>} [attributes]
   * @returns {FakeLink}
   */
  addLink(attributes = { rel: 'monetization', href: 'https://trickle.test/p/alice' }) {
    const link = new FakeLink(this, attributes);
    this.links.push(link);
    this.mutated();
    return link;
  }

  /** @param {FakeLink} link */
  removeLink(link) {
    this.links = this.links.filter((other) => other !== link);
    this.mutated();
  }

  mutated() {
    for (const callback of this.observers) queueMicrotask(callback);
  }

  /**
   * Dispatch a `monetization` event as an agent would (it bubbles from the link to the document).
   * @param {{receipt?: string | null, amountMinor?: string, scale?: number, value?: string, currency?: string}} fields
   */
  pay({ receipt = null, amountMinor, scale, value, currency = 'USD' }) {
    const event = new Event('monetization', { bubbles: true });
    Object.assign(event, {
      amountSent: { currency, value: value ?? formatMinor(BigInt(amountMinor ?? '0'), scale ?? 9) },
      paymentPointer: 'https://trickle.test/p/alice',
      incomingPayment: null,
      receipt,
      ...(amountMinor === undefined ? {} : { amountMinor, scale: scale ?? 9 }),
    });
    this.dispatchEvent(event);
  }
}

/**
 * @typedef {{status: number, body?: unknown} | 'network-error' | 'hang'} Reply
 */

/**
 * A fetch that records requests and answers from a script (default: 200 with every receipt ok).
 */
class FakeEndpoint {
  /** @type {{url: string, init: any, receipts: string[]}[]} */
  requests = [];
  /** @type {Reply[]} */
  script = [];
  /** @type {string[]} */
  acknowledged = [];
  paidTotal = 0n;

  fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
    const receipts = JSON.parse(init.body).receipts;
    this.requests.push({ url, init, receipts });
    const reply = this.script.shift() ?? { status: 200 };
    if (reply === 'network-error') throw new TypeError('Failed to fetch');
    if (reply === 'hang') {
      return new Promise((_resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    }
    if (reply.status >= 200 && reply.status < 300) {
      this.acknowledged.push(...receipts);
      this.paidTotal += BigInt(receipts.length) * 100n;
    }
    const body = reply.body ?? (reply.status < 300
      ? { results: receipts.map(() => ({ code: 'ok', credited: '100' })), paid: { total: this.paidTotal.toString(), currency: 'USD', scale: 9 } }
      : { error: { code: 'internal_error', message: 'down' } });
    return { ok: reply.status >= 200 && reply.status < 300, status: reply.status, json: async () => body };
  };
}

class FakeStorage {
  /** @type {Map<string, string>} */
  items = new Map();
  /** @param {string} key */
  getItem(key) {
    return this.items.get(key) ?? null;
  }
  /**
   * @param {string} key
   * @param {string} value
   */
  setItem(key, value) {
    this.items.set(key, value);
  }
  /** @param {string} key */
  removeItem(key) {
    this.items.delete(key);
  }
}

/**
 * A fake page. `agent: true` installs a Web Monetization agent (MonetizationEvent + relList support).
 * @param {{agent?: boolean, link?: boolean, storage?: FakeStorage}} [options]
 */
function page({ agent = true, link = true, storage = new FakeStorage() } = {}) {
  const document = new FakeDocument();
  document.supportsRel = agent;
  const clock = new FakeClock();
  const endpoint = new FakeEndpoint();
  const windowEvents = new EventTarget();
  /** @type {any} */
  const window = {
    document,
    setTimeout: clock.setTimeout.bind(clock),
    clearTimeout: clock.clearTimeout.bind(clock),
    fetch: endpoint.fetch,
    sessionStorage: storage,
    addEventListener: windowEvents.addEventListener.bind(windowEvents),
    removeEventListener: windowEvents.removeEventListener.bind(windowEvents),
    MutationObserver: class {
      /** @param {() => void} callback */
      constructor(callback) {
        this.callback = callback;
      }
      observe() {
        document.observers.add(this.callback);
      }
      disconnect() {
        document.observers.delete(this.callback);
      }
    },
  };
  if (agent) window.MonetizationEvent = class MonetizationEvent extends Event {};
  const firstLink = link ? document.addLink() : null;
  return { window, document, clock, endpoint, storage, firstLink, windowEvents };
}

/** @param {number} n */
const receipt = (n) => `eyJhbGciOiJFZERTQSJ9.payload${n}.sig${n}`;

test('bridge.js imports only the page files README.md lists, which import nothing else', () => {
  // A page loads bridge.js and, from the same folder, what it imports: nothing from Node, no
  // other path, no dynamic import. The names fit /sdk/<name>.js of the demo publisher.
  /** @type {Set<string>} */
  const loaded = new Set();
  /** @param {string} name */
  const load = (name) => {
    if (loaded.has(name)) return;
    loaded.add(name);
    // JSDoc types may name other files (`import('./x.js').Type`): only the code counts.
    const source = readFileSync(new URL(`../${name}`, import.meta.url), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/^\s*\/\/.*$/gm, '');
    assert.doesNotMatch(source, /\brequire\(|node:|\bimport\s*\(/, name);
    assert.doesNotMatch(source, /^\s*import\s+['"]/m, `${name}: no import for its side effects`);
    for (const [, specifier] of source.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s+['"]([^'"]*)['"]/gms)) {
      assert.match(specifier, /^\.\/[a-z0-9-]+\.js$/, `${name} imports ${specifier}: only a file beside it`);
      load(specifier.slice(2));
    }
  };
  load('bridge.js');
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('## Page bridge'), readme.indexOf('### Copy-paste snippet'));
  const listed = new Set([...section.matchAll(/`(bridge[a-z-]*\.js)`/g)].map((m) => m[1]));
  assert.deepEqual([...loaded].sort(), [...listed].sort());
  assert.ok(loaded.size > 1 && loaded.has('bridge-shared.js'), 'the imports are read');
});

test('formatMinor writes minor units as a major-unit decimal string without floats', () => {
  assert.equal(formatMinor(2000n, 9), '0.000002000');
  assert.equal(formatMinor(1234567890123n, 9), '1234.567890123');
  assert.equal(formatMinor(5n, 0), '5');
  assert.equal(formatMinor(9223372036854775807n, 18), '9.223372036854775807');
  assert.equal(formatMinor(-15n, 2), '-0.15');
});

describe('state', () => {
  test('unsupported without an agent, and never throws', async () => {
    const { window, document } = page({ agent: false });
    const bridge = createBridge({ window, endpoint: '/r' });
    assert.equal(bridge.state, 'unsupported');
    bridge.setBinding('abc');
    bridge.flush();
    assert.equal(bridge.total().minor, 0n);
    document.addLink();
    await settle();
    assert.equal(bridge.state, 'unsupported');
  });

  test('unsupported outside a page (Node, no document) and when relList.supports throws', () => {
    assert.equal(new Bridge().state, 'unsupported');
    const { window, document } = page({ agent: false });
    document.createElement = () => { throw new Error('no DOM'); };
    assert.equal(createBridge({ window }).state, 'unsupported');
  });

  test('relList.supports("monetization") alone is enough to be supported', () => {
    const { window } = page({ agent: true });
    delete window.MonetizationEvent;
    assert.equal(createBridge({ window }).state, 'pending');
  });

  test('pending with a link, stopped without one, pending again when a link is added', async () => {
    const { window, document } = page({ link: false });
    const bridge = createBridge({ window });
    assert.equal(bridge.state, 'stopped');
    /** @type {string[]} */
    const changes = [];
    bridge.onStateChange((state, previous) => changes.push(`${previous}->${state}`));
    document.addLink();
    await settle();
    assert.equal(bridge.state, 'pending');
    assert.deepEqual(changes, ['null->stopped', 'stopped->pending']);
  });

  test('streaming while payments arrive, stopped after stopAfterMs of silence or when the link goes', async () => {
    const { window, document, clock, firstLink } = page();
    const bridge = createBridge({ window, stopAfterMs: 10000 });
    /** @type {string[]} */
    const changes = [];
    bridge.onStateChange((state) => changes.push(state));
    assert.equal(bridge.state, 'pending');
    document.pay({ receipt: receipt(1), amountMinor: '2000' });
    assert.equal(bridge.state, 'streaming');
    await clock.advance(9000);
    document.pay({ receipt: receipt(2), amountMinor: '2000' });
    await clock.advance(9999);
    assert.equal(bridge.state, 'streaming');
    await clock.advance(1);
    assert.equal(bridge.state, 'stopped');
    document.pay({ receipt: receipt(3), amountMinor: '2000' });
    assert.equal(bridge.state, 'streaming');
    document.removeLink(/** @type {FakeLink} */ (firstLink));
    await settle();
    assert.equal(bridge.state, 'stopped');
    assert.deepEqual(changes, ['pending', 'streaming', 'stopped', 'streaming', 'stopped']);
    assert.equal(clock.timers.size, 0, 'no stop timer left behind');
  });

  test('onStateChange delivers the current state at once: a page without an agent hears "unsupported"', () => {
    const { window } = page({ agent: false });
    const bridge = createBridge({ window });
    /** @type {[string, string | null][]} */
    const calls = [];
    bridge.onStateChange((state, previous) => calls.push([state, previous]));
    assert.deepEqual(calls, [['unsupported', null]], 'called during onStateChange, before it returns');
    /** @type {string[]} */
    const late = [];
    bridge.onStateChange((state) => late.push(state));
    assert.deepEqual(late, ['unsupported'], 'every subscriber gets the current state, also a late one');
    assert.equal(calls.length, 1, 'the others are not called again: nothing changed');
  });

  test('a subscriber that throws on the first call is reported, and stays subscribed', () => {
    const { window, document } = page();
    const bridge = createBridge({ window });
    /** @type {unknown[]} */
    const errors = [];
    const originalError = console.error;
    console.error = (/** @type {unknown} */ error) => errors.push(error);
    /** @type {string[]} */
    const seen = [];
    try {
      bridge.onStateChange((state) => {
        seen.push(state);
        throw new Error('site bug');
      });
      document.pay({ receipt: receipt(1), amountMinor: '1' });
    } finally {
      console.error = originalError;
    }
    assert.deepEqual(seen, ['pending', 'streaming']);
    assert.equal(errors.length, 2);
  });

  test('a payment on a page that looked unsupported proves an agent is there', () => {
    const { window, document } = page({ agent: false });
    const bridge = createBridge({ window });
    document.pay({ receipt: receipt(1), amountMinor: '5' });
    assert.equal(bridge.state, 'streaming');
  });
});

describe('totals and onReceipt', () => {
  test('sums Trickle amounts as bigint minor units; a repeated event counts once', () => {
    const { window, document } = page();
    const bridge = createBridge({ window });
    /** @type {import('../bridge.js').ReceiptEvent[]} */
    const seen = [];
    bridge.onReceipt((event) => seen.push(event));
    document.pay({ receipt: receipt(1), amountMinor: '2000' });
    document.pay({ receipt: receipt(2), amountMinor: '2000' });
    document.pay({ receipt: receipt(2), amountMinor: '2000' });
    assert.equal(seen.length, 2);
    assert.deepEqual(bridge.total('USD'), { currency: 'USD', minor: 4000n, scale: 9, value: '0.000004000' });
    assert.equal(seen[1].receipt, receipt(2));
    assert.deepEqual(seen[1].amount, { currency: 'USD', minor: 2000n, scale: 9, value: '0.000002000' });
    assert.equal(seen[1].total.minor, 4000n);
    assert.equal(seen[1].paymentPointer, 'https://trickle.test/p/alice');
  });

  test('other agents: amountSent.value in major units, per currency, scales aligned without floats', () => {
    const { window, document } = page();
    const bridge = createBridge({ window });
    document.pay({ value: '0.01' });
    document.pay({ value: '0.005' });
    document.pay({ value: '0.1', currency: 'EUR' });
    document.pay({ value: '1e-3' });
    document.pay({ value: '-1' });
    document.pay({ value: '0.1', currency: '' });
    assert.deepEqual(bridge.total('USD'), { currency: 'USD', minor: 15n, scale: 3, value: '0.015' });
    assert.deepEqual(bridge.totals.map((t) => `${t.value} ${t.currency}`), ['0.015 USD', '0.1 EUR']);
    assert.equal(bridge.total('GBP').minor, 0n);
  });

  test('huge amounts stay exact', () => {
    const { window, document } = page();
    const bridge = createBridge({ window });
    document.pay({ receipt: receipt(1), amountMinor: '9223372036854775807' });
    document.pay({ receipt: receipt(2), amountMinor: '9223372036854775807' });
    assert.equal(bridge.total().minor, 18446744073709551614n);
  });

  test('unsubscribe works, and a throwing callback does not stop the others', () => {
    const { window, document } = page();
    const bridge = createBridge({ window });
    let calls = 0;
    const errors = [];
    const originalError = console.error;
    console.error = (/** @type {unknown} */ error) => errors.push(error);
    try {
      bridge.onReceipt(() => { throw new Error('site bug'); });
      const off = bridge.onReceipt(() => { calls += 1; });
      document.pay({ receipt: receipt(1), amountMinor: '1' });
      off();
      document.pay({ receipt: receipt(2), amountMinor: '1' });
    } finally {
      console.error = originalError;
    }
    assert.equal(calls, 1);
    assert.equal(errors.length, 2);
    assert.equal(bridge.total().minor, 2n);
  });
});

describe('binding', () => {
  test('setBinding puts data-trickle-binding on every monetization link, now and later', async () => {
    const { window, document, firstLink } = page();
    const other = document.addLink({ rel: 'stylesheet', href: '/s.css' });
    const bridge = createBridge({ window, binding: 'visitor-binding-1' });
    assert.equal(/** @type {FakeLink} */ (firstLink).getAttribute('data-trickle-binding'), 'visitor-binding-1');
    assert.equal(other.getAttribute('data-trickle-binding'), null);
    const later = document.addLink({ rel: 'Monetization', href: 'https://trickle.test/p/bob' });
    await settle();
    assert.equal(later.getAttribute('data-trickle-binding'), 'visitor-binding-1');
    bridge.setBinding('visitor-binding-2');
    assert.equal(later.getAttribute('data-trickle-binding'), 'visitor-binding-2');
    assert.equal(bridge.binding, 'visitor-binding-2');
    bridge.setBinding(null);
    assert.equal(later.getAttribute('data-trickle-binding'), null);
  });

  test('without setBinding a binding the server rendered into the link is left alone', async () => {
    const { window, document, firstLink } = page();
    const link = /** @type {FakeLink} */ (firstLink);
    link.setAttribute('data-trickle-binding', 'rendered-by-server');
    const bridge = createBridge({ window });
    const later = document.addLink({ rel: 'monetization', href: 'https://trickle.test/p/bob' });
    later.setAttribute('data-trickle-binding', 'also-rendered');
    await settle();
    assert.equal(link.getAttribute('data-trickle-binding'), 'rendered-by-server');
    assert.equal(later.getAttribute('data-trickle-binding'), 'also-rendered');
    assert.equal(bridge.binding, null);
  });

  test('a link whose rel becomes monetization later gets the binding', async () => {
    const { window, document } = page({ link: false });
    const link = document.addLink({ rel: 'preload' });
    createBridge({ window, binding: 'b' });
    link.setAttribute('rel', 'monetization');
    await settle();
    assert.equal(link.getAttribute('data-trickle-binding'), 'b');
  });

  test('a binding that is not 1-256 printable ASCII characters is a TypeError', () => {
    const { window } = page();
    const bridge = createBridge({ window });
    for (const bad of ['', 'x'.repeat(257), 'line\nbreak', 'café', /** @type {any} */ (42)]) {
      assert.throws(() => bridge.setBinding(bad), TypeError);
    }
    bridge.setBinding('~'.repeat(256));
  });
});

describe('forwarding', () => {
  test('a batch goes out after batchDelayMs, as POST JSON {"receipts": [...]} in arrival order', async () => {
    const { window, document, clock, endpoint } = page();
    const bridge = createBridge({ window, endpoint: '/trickle/receipts', batchSize: 10, batchDelayMs: 1000 });
    /** @type {import('../bridge.js').ForwardResult[]} */
    const forwarded = [];
    bridge.onForwarded((result) => forwarded.push(result));
    document.pay({ receipt: receipt(1), amountMinor: '100' });
    await clock.advance(500);
    document.pay({ receipt: receipt(2), amountMinor: '100' });
    await clock.advance(499);
    assert.equal(endpoint.requests.length, 0);
    assert.equal(bridge.pendingCount, 2);
    await clock.advance(1);
    assert.equal(endpoint.requests.length, 1);
    const [{ url, init, receipts }] = endpoint.requests;
    assert.equal(url, '/trickle/receipts');
    assert.equal(init.method, 'POST');
    assert.equal(init.headers['Content-Type'], 'application/json');
    assert.equal(init.credentials, 'same-origin');
    assert.equal(init.keepalive, false);
    assert.deepEqual(JSON.parse(init.body), { receipts: [receipt(1), receipt(2)] });
    assert.deepEqual(receipts, [receipt(1), receipt(2)]);
    assert.equal(bridge.pendingCount, 0);
    assert.deepEqual(bridge.paid, { total: '200', currency: 'USD', scale: 9 });
    assert.equal(forwarded.length, 1);
    assert.deepEqual(forwarded[0].results, [{ code: 'ok', credited: '100' }, { code: 'ok', credited: '100' }]);
  });

  test('a full batch goes out at once; the rest follows in the next batch', async () => {
    const { window, document, clock, endpoint } = page();
    createBridge({ window, endpoint: '/r', batchSize: 3, batchDelayMs: 1000 });
    for (let n = 1; n <= 4; n += 1) document.pay({ receipt: receipt(n), amountMinor: '1' });
    await settle();
    assert.deepEqual(endpoint.requests.map((r) => r.receipts), [[receipt(1), receipt(2), receipt(3)]]);
    await clock.advance(1000);
    assert.deepEqual(endpoint.requests.map((r) => r.receipts.length), [3, 1]);
    assert.deepEqual(endpoint.acknowledged, [1, 2, 3, 4].map(receipt));
  });

  test('a failed batch is retried unchanged with backoff until a 2xx; nothing lost or sent twice', async () => {
    const { window, document, clock, endpoint } = page();
    const bridge = createBridge({
      window, endpoint: '/r', batchSize: 2, batchDelayMs: 100, retryInitialMs: 1000, retryMaxMs: 3000, random: () => 1,
    });
    /** @type {import('../bridge.js').ForwardError[]} */
    const errors = [];
    bridge.onError((error) => errors.push(error));
    endpoint.script.push({ status: 503 }, 'network-error', { status: 500 }, { status: 429, body: { error: { code: 'rate_limited', message: 'slow down' } } });
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    document.pay({ receipt: receipt(2), amountMinor: '1' });
    await settle();
    document.pay({ receipt: receipt(3), amountMinor: '1' }); // arrives while the first batch fails
    await clock.advance(1000); // retry 1
    await clock.advance(2000); // retry 2
    await clock.advance(3000); // retry 3 (capped)
    assert.equal(endpoint.acknowledged.length, 0);
    await clock.advance(3000); // retry 4 succeeds
    await clock.advance(100); // then the receipt that waited
    const sent = endpoint.requests.map((r) => r.receipts);
    assert.deepEqual(sent, [
      [receipt(1), receipt(2)], [receipt(1), receipt(2)], [receipt(1), receipt(2)], [receipt(1), receipt(2)],
      [receipt(1), receipt(2)], [receipt(3)],
    ]);
    assert.deepEqual(endpoint.acknowledged, [receipt(1), receipt(2), receipt(3)]);
    assert.deepEqual(errors.map((e) => [e.status, e.code, e.attempt, e.retryInMs]), [
      [503, 'internal_error', 1, 1000], [null, 'network_error', 2, 2000], [500, 'internal_error', 3, 3000],
      [429, 'rate_limited', 4, 3000],
    ]);
    assert.equal(bridge.pendingCount, 0);
  });

  test('a request without an answer times out and is retried', async () => {
    const { window, document, clock, endpoint } = page();
    const bridge = createBridge({ window, endpoint: '/r', batchDelayMs: 0, requestTimeoutMs: 5000, retryInitialMs: 1000, random: () => 1 });
    /** @type {string[]} */
    const codes = [];
    bridge.onError((error) => codes.push(error.code));
    endpoint.script.push('hang');
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    await clock.advance(0);
    assert.equal(endpoint.requests.length, 1);
    await clock.advance(5000);
    assert.deepEqual(codes, ['timeout']);
    await clock.advance(1000);
    assert.deepEqual(endpoint.acknowledged, [receipt(1)]);
  });

  test('a repeated event is queued once; receipt-less payments are counted but not forwarded', async () => {
    const { window, document, clock, endpoint } = page();
    createBridge({ window, endpoint: '/r', batchDelayMs: 10 });
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    document.pay({ value: '0.5' });
    await clock.advance(10);
    document.pay({ receipt: receipt(1), amountMinor: '1' }); // again after it was acknowledged
    await clock.advance(10);
    assert.deepEqual(endpoint.requests.map((r) => r.receipts), [[receipt(1)]]);
  });

  test('without an endpoint nothing is sent', async () => {
    const { window, document, clock, endpoint } = page();
    const bridge = createBridge({ window });
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    await clock.advance(60000);
    assert.equal(endpoint.requests.length, 0);
    assert.equal(bridge.pendingCount, 0);
  });

  test('pagehide sends what waits at once with keepalive', async () => {
    const { window, document, endpoint, windowEvents } = page();
    createBridge({ window, endpoint: '/r', batchDelayMs: 60000 });
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    windowEvents.dispatchEvent(new Event('pagehide'));
    await settle();
    assert.equal(endpoint.requests.length, 1);
    assert.equal(endpoint.requests[0].init.keepalive, true);
  });

  test('persist: unacknowledged receipts survive in sessionStorage and are sent by the next page', async () => {
    const storage = new FakeStorage();
    const first = page({ storage });
    first.endpoint.script.push({ status: 503 });
    const bridge = createBridge({ window: first.window, endpoint: '/r', persist: true, batchDelayMs: 10 });
    first.document.pay({ receipt: receipt(1), amountMinor: '1' });
    first.document.pay({ receipt: receipt(2), amountMinor: '1' });
    await first.clock.advance(10);
    assert.equal(first.endpoint.acknowledged.length, 0);
    assert.deepEqual(JSON.parse(/** @type {string} */ (storage.getItem('trickle-bridge:/r'))), [receipt(1), receipt(2)]);
    bridge.destroy(); // the reader navigates away

    const second = page({ storage });
    createBridge({ window: second.window, endpoint: '/r', persist: true, batchDelayMs: 10 });
    second.document.pay({ receipt: receipt(2), amountMinor: '1' }); // a late duplicate is not queued again
    await second.clock.advance(10);
    assert.deepEqual(second.endpoint.acknowledged, [receipt(1), receipt(2)]);
    assert.equal(storage.getItem('trickle-bridge:/r'), null);
  });

  test('restored receipts go out in batches of batchSize', async () => {
    const storage = new FakeStorage();
    storage.setItem('my-key', JSON.stringify([1, 2, 3, 4, 5].map(receipt).concat([/** @type {any} */ (7)])));
    const { window, clock, endpoint } = page({ storage });
    createBridge({ window, endpoint: '/r', persist: 'my-key', batchSize: 2, batchDelayMs: 10 });
    await clock.advance(100);
    assert.deepEqual(endpoint.requests.map((r) => r.receipts), [[receipt(1), receipt(2)], [receipt(3), receipt(4)], [receipt(5)]]);
    assert.equal(storage.getItem('my-key'), null);
  });

  test('destroy stops listening and forwarding', async () => {
    const { window, document, clock, endpoint } = page();
    const bridge = createBridge({ window, endpoint: '/r', batchDelayMs: 10 });
    bridge.destroy();
    document.pay({ receipt: receipt(1), amountMinor: '1' });
    await clock.advance(100);
    assert.equal(endpoint.requests.length, 0);
    assert.equal(bridge.total().minor, 0n);
  });

  test('options are checked', () => {
    const { window } = page();
    assert.throws(() => createBridge({ window, batchSize: MAX_BATCH_SIZE + 1 }), TypeError);
    assert.throws(() => createBridge({ window, batchSize: 0 }), TypeError);
    assert.throws(() => createBridge({ window, batchDelayMs: -1 }), TypeError);
    assert.throws(() => createBridge({ window, binding: 'bad\n' }), TypeError);
  });
});
