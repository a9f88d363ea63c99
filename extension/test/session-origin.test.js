// A session belongs to the one service origin that issued it (issue 11, item 1): changing the
// service URL signs out before anything reaches the new service, and neither an API call nor
// the stream socket ever hands a token to another origin.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { FakeWebSocket, areas, waitFor, ws } from './fakes.js';

const A = 'http://127.0.0.1:8420';
const B = 'http://127.0.0.1:9999';

/** @type {{url: string, method: string, headers: Record<string, string>, body: string | undefined, redirect: string}[]} */
const requests = [];
let issued = 0;
/** @type {Promise<void> | null} while set, sign-ins wait for it before answering */
let signInGate = null;
const money = { balance_minor: '5000000000', month_spent_minor: '0', month_budget_minor: '5000000000', currency: 'USD', scale: 9 };

/** @type {any} */ (globalThis).fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
  requests.push({ url, method: init.method, headers: { ...init.headers }, body: init.body, redirect: init.redirect });
  const { pathname, port } = new URL(url);
  /** @param {number} status @param {any} body */
  const answer = (status, body) => ({ ok: status >= 200 && status < 300, status, type: 'basic', json: async () => body });
  if (pathname === '/api/v1/sessions' && init.method === 'POST') {
    if (signInGate) await signInGate;
    issued += 1;
    return answer(201, { token: `trk_${port}_${issued}`, user: { email: 'ann@example.com' } });
  }
  if (pathname === '/api/v1/me/settings') {
    return answer(200, { rate_per_hour_minor: '600000000', monthly_budget_minor: '5000000000', paused: false, currency: 'USD', scale: 9 });
  }
  if (pathname === '/api/v1/me/site-overrides') return answer(200, { overrides: [] });
  if (pathname === '/api/v1/sessions/current') return answer(200, { revoked: 1 });
  if (pathname === '/moved') return answer(307, null);
  return answer(404, { error: { code: 'not_found', message: 'no' } });
};

const engine = await import('../background/engine.js');
const { ApiError, callApi } = await import('../background/api.js');
const { StreamSocket } = await import('../background/connection.js');

/**
 * Everything the extension sent to `base`'s host: request URLs, headers and bodies, socket URLs
 * and messages.
 * @param {string} base
 */
function sentTo(base) {
  const origin = new URL(base).host;
  const http = requests.filter((r) => new URL(r.url).host === origin).map((r) => JSON.stringify(r));
  const sockets = FakeWebSocket.all.filter((s) => new URL(s.url).host === origin).map((s) => JSON.stringify([s.url, s.sent]));
  return [...http, ...sockets].join('\n');
}

const PAGE = 'aaaaaaaa-0000-4000-8000-000000000001';
const sender = /** @type {any} */ ({ id: 'ext', url: 'https://blog.example/a', origin: 'https://blog.example', tab: { id: 5 }, frameId: 0, documentId: 'doc-1' });
const links = [{ id: '1', href: 'https://t.example/p/alice', binding: null }];

test('a session belongs to the service origin that issued it', async (t) => {
  await engine.load();

  await t.test('changing the service URL signs out before anything reaches the new service', async () => {
    await engine.signIn('sign-in', 'ann@example.com', 'password-123');
    const token = /** @type {string} */ (engine.state.token);
    assert.match(token, /^trk_8420_/);
    await waitFor(() => ws()?.sent.length === 1);
    const old = ws();
    assert.equal(old.url, 'ws://127.0.0.1:8420/api/v1/stream');
    old.serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
    engine.pageMessage({ type: 'page/update', page: PAGE, links, visible: true, focused: true, frozen: false }, sender);
    old.serve({ type: 'started', ref: old.last('start').ref, sid: 'S1' });
    await waitFor(() => /** @type {any} */ (areas.session.auth)?.token === token);
    const socketsBefore = FakeWebSocket.all.length;

    const changing = engine.serviceUrlChanged(B);
    // Before the first await: the token is out of memory and the old socket is closed.
    assert.equal(engine.state.token, null);
    assert.deepEqual(old.last('stop'), { type: 'stop', sid: 'S1' });
    assert.equal(old.closedWith, 1000);
    assert.deepEqual(await changing, { signedOut: true });
    assert.equal(areas.session.auth, null, 'the token is out of chrome.storage.session');
    assert.equal(engine.state.serviceUrl, B);

    // Whatever wakes the engine now: no socket, no call with a token to the new service.
    engine.keepAlive();
    const shown = engine.popupState(5);
    assert.equal(shown.signedIn, false);
    assert.equal(shown.tab.state, 'signed-out');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(FakeWebSocket.all.length, socketsBefore, 'no socket to the new service');
    assert.doesNotMatch(sentTo(B), /trk_|Bearer/);
    assert.equal(sentTo(B), '');

    // The old session is ended at the service that issued it, and only there.
    await waitFor(() => requests.some((r) => r.method === 'DELETE' && r.url === `${A}/api/v1/sessions/current`));
    const revoke = requests.find((r) => r.method === 'DELETE');
    assert.equal(revoke?.headers.Authorization, `Bearer ${token}`);
    assert.deepEqual(await engine.serviceUrlChanged(B), { signedOut: false }, 'the same URL again changes nothing');
  });

  await t.test('signing in again at the new service binds the new session to it', async () => {
    await engine.signIn('sign-in', 'ann@example.com', 'password-123');
    assert.match(/** @type {string} */ (engine.state.token), /^trk_9999_/);
    await waitFor(() => ws()?.sent.length === 1);
    assert.equal(ws().url, 'ws://127.0.0.1:9999/api/v1/stream');
    await waitFor(() => /** @type {any} */ (areas.session.auth)?.origin === B);
    assert.doesNotMatch(sentTo(B), /trk_8420_/);
  });

  await t.test('a session stored for another service is dropped when the worker starts', async () => {
    for (const stored of [
      { token: 'trk_8420_stored', email: 'ann@example.com', origin: A },
      { token: 'trk_8420_stored', email: 'ann@example.com' }, // stored before sessions had an origin
    ]) {
      areas.session.auth = stored;
      areas.local.serviceUrl = B;
      const socketsBefore = FakeWebSocket.all.length;
      await engine.load();
      assert.equal(engine.state.token, null);
      assert.equal(areas.session.auth, null);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(FakeWebSocket.all.length, socketsBefore);
      assert.doesNotMatch(sentTo(B), /trk_8420_stored/);
    }
    // Its own service's session is kept.
    areas.session.auth = { token: 'trk_9999_stored', email: 'ann@example.com', origin: B };
    await engine.load();
    assert.equal(engine.state.token, 'trk_9999_stored');
    await waitFor(() => ws()?.sent[0]?.token === 'trk_9999_stored');
    assert.equal(ws().url, 'ws://127.0.0.1:9999/api/v1/stream');
  });

  await t.test('a sign-in the service answers after the URL changed is not kept', async () => {
    await engine.serviceUrlChanged(A);
    /** @type {() => void} */
    let release = () => {};
    signInGate = new Promise((resolve) => {
      release = resolve;
    });
    const signingIn = engine.signIn('sign-in', 'ann@example.com', 'password-123');
    await waitFor(() => requests.at(-1)?.url === `${A}/api/v1/sessions`);
    await engine.serviceUrlChanged(B);
    const before = sentTo(B);
    signInGate = null;
    release();
    await assert.rejects(signingIn, { code: 'session_origin_mismatch' });
    assert.equal(engine.state.token, null);
    const token = `trk_8420_${issued}`;
    assert.ok(requests.some((r) => r.method === 'DELETE' && r.url.startsWith(A) && r.headers.Authorization === `Bearer ${token}`));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(sentTo(B), before);
    assert.doesNotMatch(sentTo(B), new RegExp(token));
  });
});

test('callApi sends a token only to the origin that issued it', async () => {
  const auth = { token: 'trk_8420_x', origin: A };
  const count = requests.length;
  for (const [base, path] of [
    [B, '/api/v1/me/settings'],
    ['https://127.0.0.1:8420', '/api/v1/me/settings'], // another scheme is another origin
    [A, '@evil.example/api/v1/me/settings'], // the base's host becomes a user name
  ]) {
    await assert.rejects(callApi(base, path, { auth }), { code: 'session_origin_mismatch' });
  }
  assert.equal(requests.length, count, 'nothing was sent');
  await callApi(A, '/api/v1/me/settings', { auth });
  assert.equal(requests.at(-1)?.headers.Authorization, 'Bearer trk_8420_x');
});

test('callApi follows no redirect', async () => {
  await assert.rejects(callApi(A, '/moved', { method: 'POST', auth: { token: 'trk_8420_x', origin: A }, body: {} }), (error) => {
    assert.ok(error instanceof ApiError);
    assert.equal(error.code, 'bad_response');
    return true;
  });
  assert.equal(requests.at(-1)?.redirect, 'manual');
});

test('the stream socket refuses a URL outside the session origin', () => {
  const socket = new StreamSocket({ onWelcome: () => {}, onMessage: () => {}, onDown: () => {} });
  const count = FakeWebSocket.all.length;
  assert.throws(() => socket.ensure('ws://127.0.0.1:9999/api/v1/stream', { token: 'trk_8420_x', origin: A }), /not for/);
  assert.throws(() => socket.ensure('wss://127.0.0.1:8420/api/v1/stream', { token: 'trk_8420_x', origin: A }), /not for/);
  assert.equal(FakeWebSocket.all.length, count);
  socket.ensure('ws://127.0.0.1:8420/api/v1/stream', { token: 'trk_8420_x', origin: A });
  assert.equal(FakeWebSocket.all.length, count + 1);
  socket.stop();
});
