import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { CODES, EXTENSION_CODES, NOT_FOR_READERS, RAISE_BUDGET, budgetResetText, sentence, statusSentence } from '../shared/sentences.js';

/** The codes in the first column of a markdown table that follows `heading`. @param {string} path @param {string} heading */
function tableCodes(path, heading) {
  const text = readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
  const start = text.indexOf(heading);
  assert.ok(start >= 0, `${heading} in ${path}`);
  const rest = text.slice(start + heading.length);
  const end = rest.search(/\n#{2,3} /);
  const section = end >= 0 ? rest.slice(0, end) : rest;
  return [...section.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
}

const USD = { currency: 'USD', scale: 9 };
const en = { locale: 'en-US', timeZone: 'UTC', asset: USD };
/** @param {string} major */
const minor = (major) => String(BigInt(Math.round(Number(major) * 100)) * 10_000_000n);

test('every service code the extension can receive has a sentence; the rest say why not (docs/errors.md)', () => {
  const documented = tableCodes('docs/errors.md', '## Service (HTTP)');
  assert.ok(documented.length > 40, 'the table was found');
  for (const code of documented) {
    const covered = CODES.includes(code);
    const excluded = Object.hasOwn(NOT_FOR_READERS, code);
    assert.ok(covered !== excluded, `${code}: a sentence, or a reason in NOT_FOR_READERS (not both)`);
  }
  for (const code of Object.keys(NOT_FOR_READERS)) assert.ok(documented.includes(code), `${code} is not in docs/errors.md`);
  const known = new Set([...documented, ...tableCodes('docs/stream-protocol.md', '### Error codes'), ...EXTENSION_CODES]);
  for (const code of CODES) assert.ok(known.has(code), `${code} has a sentence but is documented nowhere`);
});

test('every error code of the stream protocol has a sentence (the popup shows why a page is not paid)', () => {
  for (const code of tableCodes('docs/stream-protocol.md', '### Error codes')) assert.ok(CODES.includes(code), code);
});

test('sentences are for people: no code, field name or unit name, and they end as sentences', () => {
  const contexts = [
    {},
    { ...en, action: /** @type {const} */ ('tip'), amountMinor: minor('4.95'), money: { balance: minor('5'), monthSpent: minor('0.13'), monthBudget: minor('5') } },
    { ...en, action: /** @type {const} */ ('stream') },
    { ...en, action: /** @type {const} */ ('sign-up'), details: { field: 'password' } },
    { ...en, action: /** @type {const} */ ('limits'), details: { field: 'rate_per_hour_minor', max: '100000000000', value: '1000000000000' } },
  ];
  for (const code of [...CODES, 'no_such_code']) {
    for (const context of contexts) {
      const { text } = sentence(code, context);
      assert.match(text, /^[A-Z“]/, `${code}: ${text}`);
      assert.match(text, /[.…]$/, `${code}: ${text}`);
      assert.doesNotMatch(text, /[a-z]+_[a-z_]+|minor units?|\bundefined\b|\bnull\b|NaN/, `${code}: ${text}`);
    }
  }
});

test("the developer messages of issue 15 are sentences now", () => {
  assert.equal(
    sentence('validation_failed', { ...en, action: 'sign-up', details: { field: 'password', min: 10 } }).text,
    'Choose a password of at least 10 characters.',
  );
  assert.equal(
    sentence('validation_failed', { ...en, action: 'limits', details: { field: 'rate_per_hour_minor', max: '100000000000', value: '1000000000000' } }).text,
    'An hourly rate can be at most $100.00; you wrote $1,000.00.',
  );
  assert.equal(
    sentence('invalid_service_url', { details: { reason: 'not_a_url' } }).text,
    'Write the service URL in full, like https://trickle.example or http://127.0.0.1:8420.',
  );
});

test('a tip over what is left of the budget says which limit and by how much (0.13 of 5.00 spent)', () => {
  const money = { balance: minor('20'), monthSpent: minor('0.13'), monthBudget: minor('5') };
  const refused = sentence('budget_exhausted', { ...en, action: 'tip', amountMinor: minor('4.95'), money });
  assert.equal(refused.text, 'This tip of $4.95 is $0.08 more than what is left of your monthly budget ($4.87 of $5.00). Nothing was paid.');
  assert.deepEqual(refused.next, RAISE_BUDGET);
  const poor = sentence('insufficient_funds', { ...en, action: 'purchase', amountMinor: minor('2'), money: { ...money, balance: minor('0.5') } });
  assert.equal(poor.text, 'This payment of $2.00 is $1.50 more than your balance ($0.50). Nothing was paid: top up first.');
  assert.equal(poor.next?.anchor, 'voucher-view');
  // Figures that cannot explain the refusal (stale) are left out rather than wrong.
  const stale = sentence('budget_exhausted', { ...en, action: 'tip', amountMinor: minor('1'), money });
  assert.equal(stale.text, 'This tip of $1.00 is more than what is left of your monthly budget. Nothing was paid.');
});

test('a spent budget says when it starts again (1st of next month, 00:00 UTC, in local time) and where to raise it', () => {
  const now = new Date(Date.UTC(2026, 10, 14, 12));
  const money = { balance: minor('20'), monthSpent: minor('5'), monthBudget: minor('5') };
  const utc = statusSentence({ state: 'error', reason: 'budget_exhausted' }, { ...en, now, money });
  assert.equal(utc.text, "Not paying: this month's budget of $5.00 is spent. It starts again on December 1, 2026 at 12:00 AM.");
  assert.deepEqual(utc.next, RAISE_BUDGET);
  // In New York the new month (UTC) begins on the evening of November 30.
  assert.equal(budgetResetText({ now, locale: 'en-US', timeZone: 'America/New_York' }), 'November 30, 2026 at 7:00 PM');
  // December rolls over into the next year.
  assert.equal(budgetResetText({ now: new Date(Date.UTC(2026, 11, 31, 23)), locale: 'en-US', timeZone: 'UTC' }), 'January 1, 2027 at 12:00 AM');
});

test("a page the service refused says why in words, not the code", () => {
  const refused = statusSentence({ state: 'error', reason: '' }, { error: 'payee_not_found' });
  assert.equal(refused.text, 'Not paying: this page names a payee the Trickle service does not know.');
});

test('every status of a tab has a sentence (the popup and the toolbar title)', () => {
  const statuses = [
    ['streaming', ''], ['paused', 'hidden'], ['paused', 'idle'], ['paused', ''], ['paused', 'global-pause'],
    ['paused', 'site-disabled'], ['not-monetized', ''], ['signed-out', 'signed_out'], ['error', 'insufficient_funds'],
    ['error', 'service_unreachable'], ['error', 'budget_exhausted'], ['error', 'account_frozen'], ['error', ''],
  ];
  for (const [state, reason] of statuses) {
    const { text } = statusSentence(/** @type {any} */ ({ state, reason }), en);
    assert.ok(text.length > 8 && text !== 'Not paying.', `${state}:${reason} → ${text}`);
    assert.doesNotMatch(text, /[a-z]+_[a-z_]+|undefined/, text);
  }
});
