// Private streaming (background/private.js) against the fake service: the anonymous socket never
// carries the session token, a page is paid one token per token value accrued and gets the
// receipts, ten attentive tabs together never pay more than the rate, pause and site-off stop the
// spending, a refused token is dropped and the spend paid again, a drop makes tokens unsure.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeWebSocket, areas, delivered } from './fakes.js';
import { FakeTokenService, SESSION_TOKEN, VALUE_MINOR, settleAll } from './fake-token-service.js';

const service = new FakeTokenService();
/** @type {any} */ (globalThis).fetch = service.fetch;
FakeWebSocket.responder = service.serveSocket;
areas.local.privatePayments = true;

// The pacer reads the clock: the test moves it.
const realNow = Date.now;
let clock = realNow();
Date.now = () => clock;

const engine = await import('../background/engine.js');
const wallet = await import('../background/tokens.js');
const priv = await import('../background/private.js');
const payments = await import('../background/payments.js');

const POINTER = 'https://t.example/p/alice';
const privateSockets = () => FakeWebSocket.all.filter((w) => w.url.endsWith('/api/v1/private-stream'));
const privateSocket = () => privateSockets().at(-1);
/** @param {number} tabId @param {string} origin */
const sender = (tabId, origin = 'https://blog.example') => /** @type {any} */ ({
  id: 'ext', url: `${origin}/post`, origin, tab: { id: tabId }, frameId: 0, documentId: `doc-${tabId}`,
});
/** @param {number} n */
const page = (n) => `aaaaaaaa-0000-4000-8000-${String(n).padStart(12, '0')}`;
/** @param {number} tabId @param {Partial<{visible: boolean, focused: boolean}>} [att] @param {string} [pointer] */
const open = (tabId, att = {}, pointer = POINTER, origin = 'https://blog.example') =>
  engine.pageMessage(
    { type: 'page/update', page: page(tabId), links: [{ id: '1', href: pointer, binding: null }], visible: true, focused: true, frozen: false, ...att },
    sender(tabId, origin),
  );
/**
 * Move the clock by `ms` in steps of `stepMs`, pacing and letting the fake service answer.
 * @param {number} ms
 * @param {number} [stepMs]
 */
async function read(ms, stepMs = 1000) {
  for (let t = 0; t < ms; t += stepMs) {
    clock += stepMs;
    priv.pace();
    await settleAll(4);
    if (wallet.held() < 10) await wallet.check();
  }
}
const spends = () => privateSockets().flatMap((w) => w.sent.filter((m) => m.type === 'spend'));
const spentTokens = () => spends().reduce((n, m) => n + m.tokens.length, 0);

test('private streaming', async (t) => {
  await engine.load();
  await engine.signIn('sign-in', 'ann@example.com', 'password-123');
  await wallet.check();
  await settleAll();
  assert.equal(wallet.held(), 10);

  await t.test('the anonymous socket says hello without any session', () => {
    assert.equal(privateSockets().length, 1);
    assert.equal(privateSocket()?.url, 'ws://127.0.0.1:8420/api/v1/private-stream');
    assert.deepEqual(privateSocket()?.sent[0], { type: 'hello', v: 1, private: true, batch: true });
  });

  await t.test('a page is paid one token per token value of reading, and gets each receipt', async () => {
    open(5);
    await settleAll();
    const start = privateSocket()?.last('start');
    assert.deepEqual(Object.keys(start).sort(), ['origin', 'pointer', 'stream', 'type']);
    assert.match(start.stream, /^[0-9a-f]{32}$/);
    assert.equal(start.origin, 'https://blog.example');
    assert.equal(engine.popupState(5).tab.state, 'streaming');
    await read(5_000);
    assert.equal(spends().length, 0, 'less than a token accrued in 5 s at 0.60 an hour');
    await read(2_000);
    assert.equal(spentTokens(), 1, 'a token after 6 s');
    assert.equal(service.paid[POINTER], VALUE_MINOR);
    const receipt = delivered.filter((d) => d.msg.type === 'trickle/receipt');
    assert.equal(receipt.length, 1);
    assert.equal(receipt[0].msg.event.amountMinor, VALUE_MINOR.toString());
    assert.equal(receipt[0].msg.event.amountSent.value, '0.001000000');
    assert.deepEqual(receipt[0].opts, { frameId: 0, documentId: 'doc-5' });
    const history = engine.popupState(5).history.find((h) => h.origin === 'https://blog.example');
    assert.equal(history?.private, VALUE_MINOR.toString());
    await read(60_000);
    assert.equal(spentTokens(), 11, '67 s at one token per 6 s');
  });

  await t.test('no attention, no spending; pause and site-off stop it too', async () => {
    let before = spentTokens();
    open(5, { focused: false });
    await read(30_000);
    assert.equal(spentTokens(), before, 'unfocused');
    assert.equal(engine.popupState(5).tab.reason, 'hidden');
    open(5);
    service.paused = true; // the reader's settings, as the service keeps them
    await engine.refreshAccount();
    await read(30_000);
    assert.equal(spentTokens(), before, 'paused');
    assert.equal(engine.popupState(5).tab.reason, 'global-pause');
    service.paused = false;
    service.overrides = [{ origin: 'https://blog.example', rate_per_hour_minor: null, disabled: true }];
    await engine.refreshAccount();
    await read(30_000);
    assert.equal(spentTokens(), before, 'site off');
    assert.equal(engine.popupState(5).tab.reason, 'site-disabled');
    service.overrides = [{ origin: 'https://blog.example', rate_per_hour_minor: '1200000000', disabled: false }];
    await engine.refreshAccount();
    before = spentTokens();
    await read(30_000);
    assert.equal(spentTokens() - before, 10, 'the site\'s own rate: twice the reader\'s');
    service.overrides = [];
    await engine.refreshAccount();
  });

  await t.test('ten attentive tabs together never pay more than the rate', async () => {
    for (let tab = 10; tab < 19; tab++) open(tab);
    await settleAll();
    await read(1_000);
    const before = spentTokens();
    const paidBefore = service.paid[POINTER];
    await read(600_000, 2_000); // ten minutes: 0.10 at 0.60 an hour = 100 tokens
    const spent = spentTokens() - before;
    assert.ok(spent <= 100, `${spent} tokens in ten minutes`);
    assert.ok(spent >= 90, `${spent} tokens: each of ten streams may hold back less than one`);
    assert.equal(service.paid[POINTER] - paidBefore, BigInt(spent) * VALUE_MINOR);
    const streams = new Set(spends().slice(-spent).map((m) => m.stream));
    assert.ok(streams.size >= 9, 'every tab paid its share');
    for (let tab = 10; tab < 19; tab++) engine.pageMessage({ type: 'page/leave', page: page(tab) }, sender(tab));
  });

  await t.test('a token refused as spent is dropped and the spend paid with another', async () => {
    const w = wallet.current();
    assert.ok(w && w.tokens.length > 0);
    service.spent.add(w.tokens[0].input); // spent elsewhere (a copy of the profile)
    const before = service.paid[POINTER];
    await read(6_000);
    await read(1_000);
    assert.ok(privateSocket()?.sent.some(() => true));
    assert.equal(service.paid[POINTER] - before, VALUE_MINOR, 'one token value paid, once');
  });

  await t.test('a drop with a spend out leaves its tokens unsure; the page is started again', async () => {
    const socket = privateSocket();
    assert.ok(socket);
    const responder = FakeWebSocket.responder;
    FakeWebSocket.responder = (s, m) => (m.type === 'spend' ? undefined : responder?.(s, m)); // no answer
    await read(6_000);
    const out = Object.values(wallet.current()?.spending ?? {});
    assert.equal(out.length, 1);
    FakeWebSocket.responder = responder;
    socket.drop(1006);
    await settleAll();
    assert.equal(Object.keys(wallet.current()?.spending ?? {}).length, 0);
    assert.ok((wallet.current()?.unsure.length ?? 0) >= 1);
    clock += 20_000; // the reconnect's backoff timer runs on the real clock
    await new Promise((resolve) => setTimeout(resolve, 1200));
    await settleAll();
    assert.equal(privateSockets().length, 2, 'a new anonymous socket');
    assert.ok(privateSocket()?.sent.some((m) => m.type === 'start'), 'the page started again');
  });

  await t.test('nothing the private socket ever sent carries the session token', () => {
    const frames = privateSockets().flatMap((w) => w.frames ?? []);
    assert.ok(frames.length > 50);
    for (const frame of frames) {
      assert.ok(!frame.includes(SESSION_TOKEN), frame);
      assert.ok(!frame.includes('ann@example.com'), frame);
    }
    for (const message of privateSockets().flatMap((w) => w.sent)) assert.ok(!('token' in message), JSON.stringify(message));
    // And the reader's own socket never carried a token of the wallet or a spend.
    const own = FakeWebSocket.all.filter((w) => w.url.endsWith('/api/v1/stream')).flatMap((w) => w.sent);
    assert.ok(own.every((m) => m.type !== 'spend' && m.type !== 'start'), 'no identified stream in private mode');
  });

  await t.test('a one-time payment goes privately: tokens for the price rounded up, no session, no cookie', async () => {
    await payments.load();
    while (wallet.held() < 10) await wallet.check();
    const held = wallet.held();
    const request = { id: 'p1', amount: '0.0025', currency: 'USD', description: 'An article', orderRef: 'order-1', paymentPointer: POINTER, binding: null };
    await payments.request({ page: page(5), request }, sender(5), 'https://blog.example');
    const { windows } = await import('./fakes.js');
    const key = /** @type {string} */ (new URL(windows.at(-1)?.url ?? '').searchParams.get('request'));
    const shown = payments.details(key);
    assert.deepEqual(shown.way, { kind: 'private', count: 3, held: held - 3, paidMinor: '3000000', remainderMinor: '500000', valueMinor: '1000000' });
    assert.equal(wallet.held(), held - 3, 'set aside for it while the reader decides');
    const paidBefore = service.paid[POINTER];
    const outcome = await payments.decide(key, true);
    assert.equal(outcome.ok, true);
    const call = service.calls.filter((c) => c.path === '/api/v1/private/payments');
    assert.equal(call.length, 1);
    assert.equal(call[0].headers.Authorization, undefined, 'no session');
    assert.equal(call[0].credentials, 'omit', 'no cookie');
    assert.ok(!JSON.stringify(call[0]).includes(SESSION_TOKEN));
    assert.equal(call[0].body.tokens.length, 3);
    assert.equal(call[0].body.amount_minor, '2500000');
    assert.equal(service.paid[POINTER] - paidBefore, 3n * VALUE_MINOR);
    assert.equal(payments.recent()[0].way, 'private');
    const result = delivered.filter((d) => d.msg.type === 'trickle/payment-result').at(-1);
    assert.equal(result?.msg.result.ok, true);
  });

  await t.test('a price beyond the tokens held is paid from the account, and the window says so before', async () => {
    const request = { id: 'p2', amount: '0.25', currency: 'USD', description: 'A book', orderRef: 'order-2', paymentPointer: POINTER, binding: null };
    await payments.request({ page: page(5), request }, sender(5), 'https://blog.example');
    const { windows } = await import('./fakes.js');
    const key = /** @type {string} */ (new URL(windows.at(-1)?.url ?? '').searchParams.get('request'));
    const way = payments.details(key).way;
    assert.equal(way?.kind, 'identified');
    assert.equal(way?.count, 250);
    await payments.decide(key, false);
  });

  await t.test('with no token left and a service whose tokens failed their proof, the tab says so', async () => {
    const w = wallet.current();
    assert.ok(w);
    const kept = { tokens: w.tokens, unsure: w.unsure, error: w.error };
    w.tokens = [];
    w.unsure = [];
    w.error = 'token_key_mismatch';
    priv.pace();
    const tab = engine.popupState(5).tab;
    assert.equal(tab.state, 'error');
    assert.equal(tab.error, 'token_key_mismatch');
    Object.assign(w, kept);
    priv.pace();
    assert.equal(engine.popupState(5).tab.error, null);
  });

  await t.test('sign-out ends the anonymous socket', async () => {
    await engine.signOut();
    assert.equal(privateSocket()?.readyState, 3);
    Date.now = realNow;
  });
});
