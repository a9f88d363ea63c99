import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isAttentive, pageStatus } from '../shared/attention.js';

const page = { visible: true, focused: true, frozen: false };
/** @param {Partial<import('../shared/attention.js').StatusInput>} over */
const input = (over = {}) => ({
  signedIn: true,
  monetized: true,
  connected: true,
  globalPaused: false,
  siteDisabled: false,
  idle: false,
  page,
  serverState: 'active',
  error: null,
  ...over,
});

test('attention needs visible, focused, not frozen and not idle', () => {
  assert.ok(isAttentive(page, false));
  assert.ok(!isAttentive({ ...page, visible: false }, false));
  assert.ok(!isAttentive({ ...page, focused: false }, false));
  assert.ok(!isAttentive({ ...page, frozen: true }, false));
  assert.ok(!isAttentive(page, true));
});

test('streaming only when everything holds', () => {
  assert.deepEqual(pageStatus(input()), { state: 'streaming', reason: '' });
});

test('each reason on its own', () => {
  const cases = [
    [{ signedIn: false }, 'signed-out', 'signed_out'],
    [{ monetized: false }, 'not-monetized', ''],
    [{ globalPaused: true }, 'paused', 'global-pause'],
    [{ siteDisabled: true }, 'paused', 'site-disabled'],
    [{ connected: false }, 'error', 'service_unreachable'],
    [{ serverState: 'insufficient_funds' }, 'error', 'insufficient_funds'],
    [{ serverState: 'budget_exhausted' }, 'error', 'budget_exhausted'],
    [{ page: { ...page, visible: false } }, 'paused', 'hidden'],
    [{ page: { ...page, focused: false } }, 'paused', 'hidden'],
    [{ page: { ...page, frozen: true } }, 'paused', 'hidden'],
    [{ idle: true }, 'paused', 'idle'],
    [{ serverState: 'paused' }, 'paused', 'global-pause'],
    [{ serverState: 'site_disabled' }, 'paused', 'site-disabled'],
    [{ serverState: 'inactive' }, 'paused', 'hidden'],
    [{ serverState: null }, 'paused', ''],
    [{ error: 'payee_not_found' }, 'error', ''],
  ];
  for (const [over, state, reason] of cases) {
    assert.deepEqual(pageStatus(input(/** @type {any} */ (over))), { state, reason }, JSON.stringify(over));
  }
});

test('the first rule wins when several hold', () => {
  const all = input({ signedIn: false, globalPaused: true, connected: false, idle: true, page: { ...page, visible: false } });
  assert.equal(pageStatus(all).state, 'signed-out');
  assert.deepEqual(pageStatus(input({ globalPaused: true, siteDisabled: true, connected: false })), { state: 'paused', reason: 'global-pause' });
  assert.deepEqual(pageStatus(input({ siteDisabled: true, connected: false })), { state: 'paused', reason: 'site-disabled' });
  assert.deepEqual(pageStatus(input({ connected: false, serverState: 'insufficient_funds' })), { state: 'error', reason: 'service_unreachable' });
  assert.deepEqual(pageStatus(input({ serverState: 'budget_exhausted', page: { ...page, visible: false } })), { state: 'error', reason: 'budget_exhausted' });
  assert.deepEqual(pageStatus(input({ idle: true, page: { ...page, visible: false } })), { state: 'paused', reason: 'hidden' });
});
