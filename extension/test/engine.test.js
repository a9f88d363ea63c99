// The background engine driven end to end against fakes of the browser APIs it uses
// (chrome.storage/tabs/action, WebSocket, fetch): what it sends the service, what it delivers to
// which document, and how it survives drops.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeWebSocket, areas, delivered, waitFor, ws } from './fakes.js';

const money = { balance_minor: '5000000000', month_spent_minor: '0', month_budget_minor: '5000000000', currency: 'USD', scale: 9 };
/** @type {any} */ (globalThis).fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
  const path = new URL(url).pathname;
  /** @type {any} */
  let body = { error: { code: 'not_found', message: 'no' } };
  let status = 404;
  if (path === '/api/v1/sessions' && init.method === 'POST') {
    body = { token: 'trk_secret', user: { email: JSON.parse(init.body).email } };
    status = 201;
  } else if (path === '/api/v1/me/settings') {
    assert.equal(init.headers.Authorization, 'Bearer trk_secret');
    body = { rate_per_hour_minor: '600000000', monthly_budget_minor: '5000000000', paused: false, currency: 'USD', scale: 9 };
    status = 200;
  } else if (path === '/api/v1/me/site-overrides') {
    body = { overrides: [] };
    status = 200;
  } else if (path === '/api/v1/sessions/current') {
    body = { revoked: 1 };
    status = 200;
  }
  return { ok: status < 300, status, json: async () => body };
};

const engine = await import('../background/engine.js');
const PAGE1 = 'aaaaaaaa-0000-4000-8000-000000000001';
const PAGE2 = 'aaaaaaaa-0000-4000-8000-000000000002';
const POINTER = 'https://t.example/p/alice';
/** @param {number} frameId @param {string} documentId */
const sender = (frameId = 0, documentId = 'doc-1') => /** @type {any} */ ({
  id: 'ext', url: 'https://blog.example/post?secret=1', origin: 'https://blog.example', tab: { id: 5 }, frameId, documentId,
});
/** @param {string} page @param {any[]} links @param {Partial<{visible: boolean, focused: boolean, frozen: boolean}>} [att] */
const update = (page, links, att = {}) => /** @type {const} */ ({ type: 'page/update', page, links, visible: true, focused: true, frozen: false, ...att });

test('the engine streams, delivers, pauses, resumes and stops', async (t) => {
  await engine.load();
  assert.equal(FakeWebSocket.all.length, 0, 'no socket while signed out');

  await t.test('sign in opens one socket and says hello with the token first', async () => {
    await engine.signIn('sign-in', 'ann@example.com', 'password-123');
    await waitFor(() => ws()?.sent.length === 1);
    assert.equal(ws().url, 'ws://127.0.0.1:8420/api/v1/stream');
    assert.deepEqual(ws().sent[0], { type: 'hello', v: 1, token: 'trk_secret', batch: true });
    ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
  });

  await t.test('a page with links starts one stream for its first valid link', () => {
    engine.pageMessage(update(PAGE1, [
      { id: '1', href: 'javascript:alert(1)', binding: null },
      { id: '2', href: POINTER, binding: 'bind-1' },
      { id: '3', href: 'https://t.example/p/bob', binding: null },
    ]), sender());
    const starts = ws().sent.filter((m) => m.type === 'start');
    assert.equal(starts.length, 1);
    const { ref, ...rest } = starts[0];
    assert.deepEqual(rest, { type: 'start', origin: 'https://blog.example', pointer: POINTER, binding: 'bind-1', active: true });
    ws().serve({ type: 'started', ref, sid: 'S1', origin: 'https://blog.example', pointer: POINTER });
    ws().serve({ type: 'state', sid: 'S1', state: 'active' });
    assert.equal(engine.popupState(5).tab.state, 'streaming');
  });

  await t.test('receipts go to that tab, frame and document, on the paid link', () => {
    ws().serve({ type: 'receipt', sid: 'S1', seq: 1, amt: '100', tot: '100', receipt: 'jws.1' });
    assert.equal(delivered.length, 1);
    const d = delivered[0];
    assert.equal(d.tabId, 5);
    assert.deepEqual(d.opts, { frameId: 0, documentId: 'doc-1' });
    assert.deepEqual(d.msg, {
      type: 'trickle/receipt', page: PAGE1, link: '2',
      event: { amountSent: { currency: 'USD', value: '0.000000100' }, paymentPointer: POINTER, incomingPayment: null, receipt: 'jws.1', amountMinor: '100', scale: 9 },
    });
    const s = engine.popupState(5);
    assert.equal(s.tab.sent, '100');
    assert.deepEqual(s.history.map((h) => [h.origin, h.minor]), [['https://blog.example', '100']]);
  });

  await t.test('attention follows visibility', () => {
    engine.pageMessage(update(PAGE1, engine.state.docs['5:0'].links, { visible: false }), sender());
    assert.deepEqual(ws().last('attention'), { type: 'attention', sid: 'S1', active: false });
    assert.deepEqual(engine.popupState(5).tab, { ...engine.popupState(5).tab, state: 'paused', reason: 'hidden' });
    engine.setIdle(true);
    engine.pageMessage(update(PAGE1, engine.state.docs['5:0'].links), sender());
    assert.equal(ws().sent.filter((m) => m.type === 'attention').length, 1, 'still idle: nothing to tell');
    engine.setIdle(false);
    assert.deepEqual(ws().last('attention'), { type: 'attention', sid: 'S1', active: true });
  });

  await t.test('a dropped socket reconnects and resumes; a re-sent receipt is not delivered twice', async () => {
    const before = FakeWebSocket.all.length;
    ws().drop(1006);
    assert.equal(engine.popupState(5).tab.reason, 'service_unreachable');
    await waitFor(() => FakeWebSocket.all.length === before + 1 && ws().sent.length === 1);
    ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
    assert.deepEqual(ws().sent[1], { type: 'resume', sid: 'S1', active: true });
    ws().serve({ type: 'resumed', sid: 'S1', seq: 1, tot: '100' });
    ws().serve({
      type: 'batch', // the service groups what it sends together
      messages: [
        { type: 'receipt', sid: 'S1', seq: 1, amt: '100', tot: '100', receipt: 'jws.1', resent: true },
        { type: 'state', sid: 'S1', state: 'active' },
      ],
    });
    assert.equal(delivered.length, 1);
    ws().serve({ type: 'receipt', sid: 'S1', seq: 2, amt: '150', tot: '250', receipt: 'jws.2' });
    assert.equal(delivered.length, 2);
    assert.equal(engine.popupState(5).tab.sent, '250');
    assert.equal(engine.popupState(5).tab.state, 'streaming');
  });

  await t.test('removing the link stops the stream at once', () => {
    engine.pageMessage(update(PAGE1, []), sender());
    assert.deepEqual(ws().last('stop'), { type: 'stop', sid: 'S1' });
    ws().serve({ type: 'stopped', sid: 'S1', reason: 'stopped', seq: 2, tot: '250' });
    assert.equal(engine.popupState(5).tab.state, 'not-monetized');
    assert.deepEqual(engine.state.streams, {});
  });

  await t.test('a receipt of the previous document is never delivered to the next one', () => {
    engine.pageMessage(update(PAGE1, [{ id: '1', href: POINTER, binding: null }]), sender());
    ws().serve({ type: 'started', ref: ws().last('start').ref, sid: 'S2' });
    engine.pageMessage(update(PAGE2, [{ id: '1', href: POINTER, binding: null }]), sender(0, 'doc-2'));
    assert.deepEqual(ws().last('stop'), { type: 'stop', sid: 'S2' });
    const count = delivered.length;
    ws().serve({ type: 'receipt', sid: 'S2', seq: 1, amt: '7', tot: '7', receipt: 'late' });
    assert.equal(delivered.length, count);
    assert.equal(engine.state.history['https://blog.example'].minor, '257', 'the money moved all the same');
    ws().serve({ type: 'started', ref: ws().last('start').ref, sid: 'S3' });
    ws().serve({ type: 'receipt', sid: 'S3', seq: 1, amt: '5', tot: '5', receipt: 'new' });
    assert.deepEqual(delivered.at(-1)?.opts, { frameId: 0, documentId: 'doc-2' });
    assert.equal(delivered.at(-1)?.msg.page, PAGE2);
    assert.equal(engine.popupState(5).tab.sent, '5', 'this visit');
  });

  await t.test('an unknown pointer falls back to the next link', () => {
    engine.pageMessage({ type: 'page/leave', page: PAGE2 }, sender(0, 'doc-2'));
    assert.deepEqual(ws().last('stop'), { type: 'stop', sid: 'S3' });
    engine.pageMessage(update(PAGE1, [{ id: 'a', href: 'https://t.example/p/nobody', binding: null }, { id: 'b', href: POINTER, binding: null }]), sender(0, 'doc-3'));
    const first = ws().last('start');
    assert.equal(first.pointer, 'https://t.example/p/nobody');
    ws().serve({ type: 'error', code: 'payee_not_found', message: 'no payee', ref: first.ref });
    const second = ws().last('start');
    assert.equal(second.pointer, POINTER);
    assert.notEqual(second.ref, first.ref);
    ws().serve({ type: 'started', ref: second.ref, sid: 'S4' });
  });

  await t.test('a stream the service forgot is started afresh after a reconnect', async () => {
    const before = FakeWebSocket.all.length;
    ws().drop(1001);
    await waitFor(() => FakeWebSocket.all.length === before + 1 && ws().sent.length === 1);
    ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
    assert.deepEqual(ws().last('resume'), { type: 'resume', sid: 'S4', active: true });
    ws().serve({ type: 'error', code: 'unknown_stream', message: 'gone', sid: 'S4' });
    assert.equal(ws().last('start').pointer, POINTER);
  });

  await t.test('the service saying unauthenticated signs the reader out', async () => {
    ws().drop(4401);
    await waitFor(() => engine.state.token === null);
    const count = FakeWebSocket.all.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(FakeWebSocket.all.length, count, 'no reconnect');
    assert.equal(engine.popupState(5).tab.state, 'signed-out');
    await waitFor(() => areas.session.auth === null);
  });

  await t.test('a session ended while the socket was open (4440) signs out without reconnecting', async () => {
    await engine.signIn('sign-in', 'ann@example.com', 'password-123');
    await waitFor(() => ws()?.sent.length === 1 && engine.state.token !== null);
    ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
    ws().drop(4440);
    await waitFor(() => engine.state.token === null);
    const count = FakeWebSocket.all.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(FakeWebSocket.all.length, count, 'no reconnect');
    assert.equal(engine.popupState(5).tab.state, 'signed-out');
  });
});

test('the history keeps the one-time part when streamed receipts follow a purchase', async () => {
  await engine.signIn('sign-in', 'ann@example.com', 'password-123');
  await waitFor(() => ws()?.sent.length === 1);
  ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
  const shop = /** @type {any} */ ({ ...sender(0, 'doc-shop'), url: 'https://shop.example/a', origin: 'https://shop.example', tab: { id: 8 } });
  engine.pageMessage(update(PAGE1, [{ id: '1', href: POINTER, binding: null }]), shop);
  ws().serve({ type: 'started', ref: ws().last('start').ref, sid: 'SHOP' });

  engine.recordOneTime('https://shop.example', '50000000', {}); // a 0.05 USD purchase
  ws().serve({ type: 'receipt', sid: 'SHOP', seq: 1, amt: '100', tot: '100', receipt: 'jws.a' });
  ws().serve({ type: 'receipt', sid: 'SHOP', seq: 2, amt: '150', tot: '250', receipt: 'jws.b' });
  engine.recordOneTime('https://shop.example', '20000000', {}); // and a tip
  ws().serve({ type: 'receipt', sid: 'SHOP', seq: 3, amt: '5', tot: '255', receipt: 'jws.c' });

  const entry = engine.state.history['https://shop.example'];
  assert.equal(entry.minor, '70000255', 'streamed and one-time together');
  assert.equal(entry.oneTime, '70000000', 'the one-time part survives the streamed receipts');
  assert.equal(entry.oneTimeCount, 2);
  const shown = engine.popupState(8).history.find((h) => h.origin === 'https://shop.example');
  assert.deepEqual(shown && { minor: shown.minor, oneTime: shown.oneTime }, { minor: '70000255', oneTime: '70000000' });
  await waitFor(() => /** @type {any} */ (areas.local.history)?.['https://shop.example']?.minor === '70000255', 2000);
  assert.equal(/** @type {any} */ (areas.local.history)['https://shop.example'].oneTime, '70000000', 'and so does the stored copy');
  await engine.signOut(); // closes the socket (and its ping timer)
});
