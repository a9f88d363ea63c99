// The background's one-time payments driven against fakes of the browser APIs (storage, tabs,
// windows, WebSocket, fetch): prompt or auto-approve, one Idempotency-Key across retries, the
// result to the asking document only, busy, decline on window close, tip.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { delivered, removedWindows, waitFor, windows } from './fakes.js';

/** @type {{path: string, key: string | undefined, body: any}[]} */
const calls = [];
/** How many of the next payment calls fail without an answer. */
let dropNext = 0;
/** @type {string | null} an error code the next payment call answers */
let refuseNext = null;
let balance = 5_000_000_000n;
/** @type {Map<string, any>} the fake service's idempotency store */
const byKey = new Map();
/** @type {any} */ (globalThis).fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
  const path = new URL(url).pathname;
  /** @param {number} status @param {any} body */
  const answer = (status, body) => ({ ok: status < 300, status, json: async () => body });
  if (path === '/api/v1/sessions') return answer(201, { token: 'trk_secret', user: { email: 'ann@example.com' } });
  if (path === '/api/v1/me/settings') {
    return answer(200, { rate_per_hour_minor: '600000000', monthly_budget_minor: '5000000000', paused: false, currency: 'USD', scale: 9 });
  }
  if (path === '/api/v1/me/site-overrides') return answer(200, { overrides: [] });
  if (path === '/api/v1/payments') {
    const key = init.headers['Idempotency-Key'];
    const body = JSON.parse(init.body);
    calls.push({ path, key, body });
    if (dropNext > 0) {
      dropNext -= 1;
      if (!byKey.has(key)) {
        balance -= BigInt(body.amount_minor); // the service committed; the answer was lost
        byKey.set(key, { id: byKey.size + 1, sid: `sid-${byKey.size + 1}`, ...body });
      }
      throw new TypeError('network error');
    }
    if (refuseNext) {
      const code = refuseNext;
      refuseNext = null;
      return answer(409, { error: { code, message: `refused: ${code}` } });
    }
    if (!byKey.has(key)) {
      balance -= BigInt(body.amount_minor);
      byKey.set(key, { id: byKey.size + 1, sid: `sid-${byKey.size + 1}`, ...body });
    }
    const p = byKey.get(key);
    return answer(201, {
      ...p,
      scale: 9,
      receipt: `jws.${p.sid}`,
      balance_minor: balance.toString(),
      month_spent_minor: '0',
      month_budget_minor: '5000000000',
    });
  }
  return answer(404, { error: { code: 'not_found', message: 'no' } });
};

const engine = await import('../background/engine.js');
const payments = await import('../background/payments.js');
const PAGE = 'aaaaaaaa-0000-4000-8000-000000000001';
const POINTER = 'https://t.example/p/alice';
/** @param {number} [tabId] */
const sender = (tabId = 5) => /** @type {any} */ ({ id: 'ext', url: 'https://shop.example/a', origin: 'https://shop.example', tab: { id: tabId }, frameId: 0, documentId: `doc-${tabId}` });
/** @param {string} id @param {Partial<import('../shared/payments.js').PaymentRequest>} [extra] */
const req = (id, extra = {}) => ({
  page: PAGE,
  request: { id, amount: '0.25', currency: 'USD', description: 'An article', orderRef: `order-${id}`, paymentPointer: POINTER, binding: 'b-1', ...extra },
});
/** @param {string} id */
const resultOf = (id) => delivered.find((d) => d.msg.type === 'trickle/payment-result' && d.msg.result.id === id);

test('one-time payments in the background', async (t) => {
  await engine.load();
  await payments.load();
  await engine.signIn('sign-in', 'ann@example.com', 'password-123');

  await t.test('a request opens an approval window naming the site, payee, amount, description', async () => {
    await payments.request(req('r1'), sender(), 'https://shop.example');
    assert.equal(windows.length, 1);
    const key = /** @type {string} */ (new URL(windows[0].url).searchParams.get('request'));
    assert.match(windows[0].url, /^chrome-extension:\/\/ext\/pages\/approve\.html\?request=/);
    assert.deepEqual(payments.details(key), {
      origin: 'https://shop.example', payee: POINTER, amountMinor: '250000000', currency: 'USD', scale: 9,
      description: 'An article', orderRef: 'order-r1', status: 'prompt', boughtBefore: null,
      way: { kind: 'identified', count: 0, held: 0, paidMinor: '250000000', remainderMinor: '0', valueMinor: null },
    });
    assert.equal(calls.length, 0, 'nothing paid before approval');

    // A second request of the same page while the first waits is busy.
    await payments.request(req('r2'), sender(), 'https://shop.example');
    assert.equal(resultOf('r2')?.msg.result.code, 'busy');
    assert.equal(windows.length, 1);

    dropNext = 2; // the first two attempts lose their answers: retried with the same key
    const outcome = await payments.decide(key, true);
    assert.deepEqual(outcome, { ok: true, amountMinor: '250000000', currency: 'USD', scale: 9, origin: 'https://shop.example', way: 'identified', paidMinor: '250000000' });
    assert.equal(calls.length, 3);
    assert.equal(new Set(calls.map((c) => c.key)).size, 1, 'one Idempotency-Key for every attempt');
    assert.equal(balance, 4_750_000_000n, 'charged once');
    assert.deepEqual(calls[0].body, {
      payment_pointer: POINTER, origin: 'https://shop.example', amount_minor: '250000000', currency: 'USD', order_ref: 'order-r1',
      binding: 'b-1', description: 'An article',
    });
    const r = /** @type {any} */ (resultOf('r1'));
    assert.deepEqual(r.opts, { frameId: 0, documentId: 'doc-5' });
    assert.equal(r.tabId, 5);
    assert.deepEqual(r.msg, { type: 'trickle/payment-result', page: PAGE, result: { id: 'r1', ok: true, receipt: 'jws.sid-1', amountMinor: '250000000', currency: 'USD', scale: 9 } });
    assert.equal(engine.state.history['https://shop.example'].oneTime, '250000000');
    await assert.rejects(payments.decide(key, true), /no longer waiting/, 'a decided request cannot be approved again');
  });

  await t.test('closing the approval window declines; nothing is paid', async () => {
    await payments.request(req('c1'), sender(), 'https://shop.example');
    const w = windows.at(-1);
    payments.windowClosed(/** @type {any} */ (w).id);
    assert.deepEqual(resultOf('c1')?.msg.result, { id: 'c1', ok: false, code: 'declined', message: 'The reader closed the approval window.' });
    assert.equal(calls.length, 3);
  });

  await t.test('a refusal of the service reaches the page with its code', async () => {
    await payments.request(req('f1'), sender(), 'https://shop.example');
    const key = /** @type {string} */ (new URL(/** @type {any} */ (windows.at(-1)).url).searchParams.get('request'));
    refuseNext = 'insufficient_funds';
    const outcome = await payments.decide(key, true);
    assert.equal(outcome.ok, false);
    assert.equal(resultOf('f1')?.msg.result.code, 'insufficient_funds');
    assert.equal(resultOf('f1')?.msg.result.details, undefined, 'the page gets the contract fields only');
  });

  await t.test('the approval window is told the service code behind a decline (a frozen account)', async () => {
    await payments.request(req('z1'), sender(), 'https://shop.example');
    const key = /** @type {string} */ (new URL(/** @type {any} */ (windows.at(-1)).url).searchParams.get('request'));
    refuseNext = 'account_frozen';
    const outcome = await payments.decide(key, true);
    assert.deepEqual([outcome.code, outcome.details?.cause], ['declined', 'account_frozen']);
    assert.equal(resultOf('z1')?.msg.result.code, 'declined');
  });

  await t.test('the same order on the same site again: the window says it was bought before, and when', async () => {
    const bought = payments.oneTime.recent.find((r) => r.orderRef === 'order-r1');
    assert.ok(bought, 'r1 was bought above');
    await payments.request(req('r1'), sender(8), 'https://shop.example');
    const key = /** @type {string} */ (new URL(/** @type {any} */ (windows.at(-1)).url).searchParams.get('request'));
    assert.deepEqual(payments.details(key).boughtBefore, { at: bought.at, amountMinor: '250000000', currency: 'USD', scale: 9 });
    // Another site with the same order reference, or another order here: not bought before.
    assert.equal(payments.boughtBefore('https://other.example', 'order-r1'), null);
    assert.equal(payments.boughtBefore('https://shop.example', 'order-r9'), null);
    payments.windowClosed(/** @type {any} */ (windows.at(-1)).id);
  });

  await t.test('under the site limit and the daily cap: paid without a window; over the cap: asked', async () => {
    payments.oneTime.autoApprove['https://shop.example'] = '300000000';
    payments.oneTime.dailyCap = '600000000';
    const before = windows.length;
    await payments.request(req('a1'), sender(), 'https://shop.example');
    await payments.request(req('a2', { amount: '0.30' }), sender(6), 'https://shop.example');
    assert.equal(windows.length, before);
    assert.equal(resultOf('a1')?.msg.result.ok, true);
    assert.equal(resultOf('a2')?.msg.result.ok, true);
    assert.equal(/** @type {any} */ (payments.oneTime.autoSpent).minor, '550000000');
    await payments.request(req('a3', { amount: '0.10' }), sender(), 'https://shop.example'); // 0.65 > 0.60
    assert.equal(windows.length, before + 1, 'over the daily cap: the reader is asked');
    payments.windowClosed(/** @type {any} */ (windows.at(-1)).id);
    await payments.request(req('a4', { amount: '0.31' }), sender(), 'https://shop.example');
    assert.equal(windows.length, before + 2, 'over the site limit: the reader is asked');
    payments.windowClosed(/** @type {any} */ (windows.at(-1)).id);
    refuseNext = 'budget_exhausted';
    await payments.request(req('a5', { amount: '0.05' }), sender(), 'https://shop.example');
    assert.equal(resultOf('a5')?.msg.result.code, 'budget_exhausted');
    assert.equal(/** @type {any} */ (payments.oneTime.autoSpent).minor, '550000000', 'a refused auto-payment gives its reservation back');
  });

  await t.test('a request in another currency or with too many digits is invalid', async () => {
    await payments.request(req('x1', { currency: 'EUR' }), sender(), 'https://shop.example');
    assert.equal(resultOf('x1')?.msg.result.code, 'invalid_request');
    await payments.request(req('x2', { amount: '0.0000000001' }), sender(), 'https://shop.example');
    assert.equal(resultOf('x2')?.msg.result.code, 'invalid_request');
  });

  await t.test('a navigation drops the prompt without an answer', async () => {
    await payments.request(req('n1'), sender(), 'https://shop.example');
    const w = /** @type {any} */ (windows.at(-1));
    payments.pageLeft(5, 0, PAGE);
    assert.ok(removedWindows.includes(w.id));
    assert.equal(resultOf('n1'), undefined);
    assert.deepEqual(payments.pending, {});
  });

  await t.test('tip: the tab link payee, for the tab origin, a tip- order ref', async () => {
    engine.pageMessage({ type: 'page/update', page: PAGE, links: [{ id: '1', href: POINTER, binding: 'x' }], visible: true, focused: true, frozen: false }, sender(7));
    const r = await payments.tip(7, '0.50');
    assert.equal(r.amount, '500000000');
    const call = /** @type {any} */ (calls.at(-1));
    assert.equal(call.body.payment_pointer, POINTER);
    assert.equal(call.body.origin, 'https://shop.example');
    assert.match(call.body.order_ref, /^tip-[0-9a-f]{32}$/);
    assert.equal(call.body.binding, undefined);
    await assert.rejects(payments.tip(7, '0'), /above zero/);
    await assert.rejects(payments.tip(99, '0.50'), /no monetized page/);
    assert.equal(payments.oneTime.recent[0].kind, 'tip');
  });

  await t.test('signed out: signed_out', async () => {
    await engine.signOut();
    await payments.request(req('s1'), sender(), 'https://shop.example');
    assert.equal(resultOf('s1')?.msg.result.code, 'signed_out');
    await waitFor(() => Object.keys(payments.pending).length === 0);
  });
});
