import assert from 'node:assert/strict';
import { test } from 'node:test';
import { backoffDelay } from '../shared/backoff.js';

test('the ceiling doubles per attempt and is capped', () => {
  const top = () => 1;
  assert.equal(backoffDelay(0, { random: top }), 500);
  assert.equal(backoffDelay(1, { random: top }), 1000);
  assert.equal(backoffDelay(2, { random: top }), 2000);
  assert.equal(backoffDelay(4, { random: top }), 8000);
  assert.equal(backoffDelay(5, { random: top }), 10_000);
  assert.equal(backoffDelay(100, { random: top }), 10_000);
});

test('jitter spreads delays over the upper half of the ceiling', () => {
  assert.equal(backoffDelay(3, { random: () => 0 }), 2000);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 3000);
  assert.equal(backoffDelay(3, { random: () => 0.999999 }), 4000);
  const seen = new Set();
  for (let i = 0; i < 200; i += 1) {
    const d = backoffDelay(4);
    assert.ok(d >= 4000 && d <= 8000, String(d));
    seen.add(d);
  }
  assert.ok(seen.size > 20, 'delays are random');
});

test('options and bad attempts', () => {
  assert.equal(backoffDelay(2, { baseMs: 100, maxMs: 250, random: () => 1 }), 250);
  assert.throws(() => backoffDelay(-1), RangeError);
  assert.throws(() => backoffDelay(1.5), RangeError);
  assert.equal(backoffDelay(0, { random: () => 7 }), 500); // a bad random source is clamped
});
