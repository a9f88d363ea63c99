// shared/accrual.js: the accrual rule the extension paces private spending with, against the
// vectors the service's own Accrual passes (tests/vectors/accrual.json), and the states.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { Accrual, HOUR_MS, pacedState, settle, siteRate } from '../shared/accrual.js';

const VECTORS = JSON.parse(readFileSync(new URL('../../tests/vectors/accrual.json', import.meta.url), 'utf8'));

test('the extension takes exactly what the service takes (shared vectors)', () => {
  assert.equal(BigInt(VECTORS.hour_ms), HOUR_MS);
  assert.ok(VECTORS.cases.length >= 5);
  for (const c of VECTORS.cases) {
    const accrual = new Accrual();
    for (const [i, step] of c.steps.entries()) {
      accrual.add(BigInt(step.rate_per_hour_minor), BigInt(step.elapsed_ms), step.share);
      assert.equal(accrual.take().toString(), step.take, `${c.name}, step ${i}`);
    }
  }
});

const policy = { paused: false, rate: '600000000', overrides: { 'https://off.example': { rate: null, disabled: true }, 'https://own.example': { rate: '1200000000', disabled: false } } };

test('a site is paid its own rate, the reader rate, or nothing when turned off', () => {
  assert.equal(siteRate(policy, 'https://blog.example'), 600000000n);
  assert.equal(siteRate(policy, 'https://own.example'), 1200000000n);
  assert.equal(siteRate(policy, 'https://off.example'), null);
});

test('the first rule that applies decides the state, as the service decides', () => {
  const base = { connected: true, frozen: false, blocked: null, policy, origin: 'https://blog.example', attentive: true };
  assert.equal(pacedState(base), 'active');
  assert.equal(pacedState({ ...base, attentive: false }), 'inactive');
  assert.equal(pacedState({ ...base, connected: false, frozen: true }), 'disconnected');
  assert.equal(pacedState({ ...base, frozen: true, policy: { ...policy, paused: true } }), 'account_frozen');
  assert.equal(pacedState({ ...base, policy: { ...policy, paused: true }, origin: 'https://off.example' }), 'paused');
  assert.equal(pacedState({ ...base, origin: 'https://off.example', blocked: 'budget_exhausted' }), 'site_disabled');
  assert.equal(pacedState({ ...base, blocked: 'budget_exhausted', attentive: false }), 'budget_exhausted');
});

test('ten active streams together accrue the rate, not ten times it', () => {
  const streams = Array.from({ length: 10 }, () => ({ origin: 'https://blog.example', state: /** @type {const} */ ('active'), accrual: new Accrual(), lastMs: 0 }));
  for (let now = 1000; now <= 3_600_000; now += 1000) settle(streams, policy, now);
  const total = streams.reduce((sum, s) => sum + s.accrual.take(), 0n);
  assert.ok(total <= 600000000n && total >= 600000000n - 10n, `${total}`);
});
