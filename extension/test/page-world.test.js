// The page-world script's `onmonetization` handler and MonetizationEvent, run in a Node vm with
// the few DOM pieces it touches (EventTarget-based fakes). The real DOM (bubbling, the content
// attribute as parsed, scope) is covered in tests/e2e/test_page_world.py.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import vm from 'node:vm';

const SOURCE = readFileSync(new URL('../content/page-world.js', import.meta.url), 'utf8');

function makeWorld() {
  class Element extends EventTarget {
    /** @type {Map<string, string>} */
    attributes = new Map();
    /** @param {string} name */
    hasAttribute(name) {
      return this.attributes.has(name);
    }
    /** @param {string} name */
    getAttribute(name) {
      return this.attributes.get(name) ?? null;
    }
    /** @param {string} name @param {string} value */
    setAttribute(name, value) {
      this.attributes.set(name, value);
      for (const observer of observers) observer([{ target: this }]);
    }
  }
  class HTMLElement extends Element {}
  class HTMLLinkElement extends HTMLElement {}
  class Document extends EventTarget {}
  /** @type {((records: any[]) => void)[]} */
  const observers = [];
  class MutationObserver {
    /** @param {(records: any[]) => void} callback */
    constructor(callback) {
      this.callback = callback;
    }
    observe() {
      observers.push(this.callback);
    }
  }
  const document = new Document();
  /** @type {unknown[]} */
  const reported = [];
  const window = new EventTarget();
  Object.assign(window, {
    Element, HTMLElement, HTMLLinkElement, Document, MutationObserver, document, Function,
    reportError: (/** @type {unknown} */ e) => reported.push(e),
  });
  const context = vm.createContext({
    window, document, Event, CustomEvent, EventTarget, Element, HTMLElement, HTMLLinkElement, Document,
    MutationObserver, DOMTokenList: class {}, Object, JSON, String, Number, WeakMap, WeakSet,
  });
  vm.runInContext(SOURCE, context);
  const link = new HTMLLinkElement();
  /** @type {any} */ (link).ownerDocument = document;
  return { window: /** @type {any} */ (window), document: /** @type {any} */ (document), link: /** @type {any} */ (link), reported };
}

/** @param {any} world @param {EventTarget} target */
function fire(world, target) {
  const event = new world.window.MonetizationEvent('monetization', {
    cancelable: true,
    amountSent: { currency: 'USD', value: '0.01' },
    paymentPointer: 'https://t.example/p/a',
    receipt: 'jws',
  });
  return target.dispatchEvent(event);
}

test('MonetizationEvent carries the spec fields, incomingPayment null unless given', () => {
  const world = makeWorld();
  const event = new world.window.MonetizationEvent('monetization', { amountSent: { currency: 'USD', value: '0.01' }, paymentPointer: 'p' });
  assert.deepEqual({ ...event.amountSent }, { currency: 'USD', value: '0.01' });
  assert.equal(event.paymentPointer, 'p');
  assert.equal(event.incomingPayment, null);
});

test('window.onmonetization: a function handles the event, `this` is the target, false cancels', () => {
  const world = makeWorld();
  assert.equal(world.window.onmonetization, null);
  /** @type {unknown[]} */
  const seen = [];
  world.window.onmonetization = function (/** @type {Event} */ event) {
    seen.push([this === world.window, event.type, /** @type {any} */ (event).receipt]);
    return false;
  };
  assert.equal(typeof world.window.onmonetization, 'function');
  assert.equal(fire(world, world.window), false, 'return false cancels');
  assert.deepEqual(seen, [[true, 'monetization', 'jws']]);
});

test('a non-object is null; replacing a handler calls only the new one; null removes it', () => {
  const world = makeWorld();
  /** @type {string[]} */
  const seen = [];
  world.document.onmonetization = () => seen.push('first');
  world.document.onmonetization = () => seen.push('second');
  fire(world, world.document);
  assert.deepEqual(seen, ['second']);
  world.document.onmonetization = 'seen.push("string")';
  assert.equal(world.document.onmonetization, null);
  fire(world, world.document);
  assert.deepEqual(seen, ['second']);
});

test('the content attribute is compiled into a handler of `event`, `this` the element', () => {
  const world = makeWorld();
  /** @type {any} */ (globalThis).__pageWorldSeen = [];
  world.link.setAttribute('onmonetization', 'globalThis.__pageWorldSeen.push([this.tagName ?? "link", event.type]); return false');
  assert.equal(typeof world.link.onmonetization, 'function');
  assert.equal(fire(world, world.link), false);
  assert.deepEqual(/** @type {any} */ (globalThis).__pageWorldSeen, [['link', 'monetization']]);
  // The IDL value wins over the attribute until the attribute is set again.
  world.link.onmonetization = null;
  assert.equal(fire(world, world.link), true);
  world.link.setAttribute('onmonetization', 'this is ( not js');
  assert.equal(world.link.onmonetization, null);
  assert.equal(world.reported.length, 1, 'the syntax error is reported');
});
