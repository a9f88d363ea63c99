// Card top-ups: the service's answers checked field by field, the Stripe page's URL, what the
// popup says; and the background driven against fakes (fetch, storage, tabs): one
// Idempotency-Key across retries, Stripe's page opened in a tab, the credit followed and the
// stream socket asked for the new balance.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { waitFor, ws } from './fakes.js';
import { TopupAnswerError, checkoutUrl, parseOptions, parseTopup, topupText } from '../shared/topups.js';
import { parseUiMessage } from '../shared/messages.js';

const OPTIONS = {
  card: {
    provider: 'stripe',
    currency: 'USD',
    scale: 9,
    presets: ['5000000000', '10000000000'],
    min_amount_minor: '1000000000',
    max_amount_minor: '500000000000',
  },
  account_frozen: false,
};
const TOPUP = {
  id: 7,
  state: 'pending',
  amount_minor: '5000000000',
  currency: 'USD',
  scale: 9,
  checkout_url: 'https://checkout.stripe.com/c/pay/cs_test_a1',
  failure_reason: null,
  refunded_minor: '0',
  disputed_minor: '0',
  created_at: '2026-12-14T10:00:00Z',
  expires_at: '2026-12-14T11:00:00Z',
  credited_at: null,
};

test('card options: parsed strictly, or none', () => {
  assert.deepEqual(parseOptions(OPTIONS), {
    card: { currency: 'USD', scale: 9, presets: ['5000000000', '10000000000'], min: '1000000000', max: '500000000000' },
    frozen: false,
  });
  assert.deepEqual(parseOptions({ card: null, account_frozen: true }), { card: null, frozen: true });
  for (const bad of [
    null,
    { card: null },
    { ...OPTIONS, card: { ...OPTIONS.card, presets: [5000000000] } },
    { ...OPTIONS, card: { ...OPTIONS.card, presets: ['5.00'] } },
    { ...OPTIONS, card: { ...OPTIONS.card, scale: 19 } },
    { ...OPTIONS, card: { ...OPTIONS.card, currency: 'usd' } },
    { ...OPTIONS, card: { ...OPTIONS.card, min_amount_minor: '-1' } },
  ]) {
    assert.throws(() => parseOptions(bad), TopupAnswerError, JSON.stringify(bad));
  }
});

test('a top-up: parsed strictly; its page must be https (http only on this machine)', () => {
  assert.deepEqual(parseTopup(TOPUP), {
    id: 7,
    state: 'pending',
    amount: '5000000000',
    currency: 'USD',
    scale: 9,
    checkoutUrl: 'https://checkout.stripe.com/c/pay/cs_test_a1',
    failureReason: null,
  });
  assert.equal(parseTopup({ ...TOPUP, state: 'credited', checkout_url: null }).checkoutUrl, null);
  assert.equal(checkoutUrl('http://127.0.0.1:9999/pay/cs_1'), 'http://127.0.0.1:9999/pay/cs_1');
  for (const url of ['http://checkout.stripe.com/x', 'javascript:alert(1)', 'chrome://settings', 'https://u:p@stripe.com/', 'nope', 5]) {
    assert.throws(() => checkoutUrl(url), TopupAnswerError, String(url));
  }
  for (const bad of [{ ...TOPUP, id: 0 }, { ...TOPUP, state: 'paid' }, { ...TOPUP, amount_minor: 5 }, { ...TOPUP, checkout_url: 'file:///etc/passwd' }]) {
    assert.throws(() => parseTopup(bad), TopupAnswerError);
  }
});

test('what the popup says: pending, credited, or why not', () => {
  const t = parseTopup(TOPUP);
  assert.equal(topupText(t, 'en-US'), 'Top-up of $5.00: waiting for your payment at Stripe…');
  // Stripe's decline code is put in words, never shown as it is.
  assert.equal(topupText({ ...t, failureReason: 'card_declined' }, 'en-US'), "Top-up of $5.00: your bank declined the card. Try again on Stripe's page.");
  assert.equal(topupText({ ...t, failureReason: 'do_not_honor' }, 'en-US'), "Top-up of $5.00: the last attempt was declined. Try again on Stripe's page.");
  assert.equal(topupText({ ...t, state: 'credited' }, 'en-US'), 'Credited $5.00.');
  assert.equal(topupText({ ...t, state: 'failed', failureReason: 'expired' }, 'en-US'), 'Top-up of $5.00 not credited: the payment page expired before you paid.');
  assert.match(topupText({ ...t, state: 'disputed' }), /on hold/);
});

test('the popup messages are strict', () => {
  assert.deepEqual(parseUiMessage({ type: 'ui/topup', amountMinor: '5000000000' }), { type: 'ui/topup', amountMinor: '5000000000' });
  assert.deepEqual(parseUiMessage({ type: 'ui/topup-status' }), { type: 'ui/topup-status' });
  assert.deepEqual(parseUiMessage({ type: 'ui/topup-options' }), { type: 'ui/topup-options' });
  for (const bad of [
    { type: 'ui/topup', amountMinor: '5.00' },
    { type: 'ui/topup', amountMinor: 5000000000 },
    { type: 'ui/topup', amountMinor: '1'.repeat(20) },
    { type: 'ui/topup' },
    { type: 'ui/topup-status', id: 7 },
  ]) {
    assert.throws(() => parseUiMessage(bad), /./, JSON.stringify(bad));
  }
});

/** @type {{path: string, key: string | undefined, body: any}[]} */
const calls = [];
let failNext = 0; // the next creations answer 502 stripe_unavailable
let state = 'pending';
/** @type {any} */ (globalThis).fetch = async (/** @type {string} */ url, /** @type {any} */ init) => {
  const path = new URL(url).pathname;
  /** @param {number} status @param {any} body */
  const answer = (status, body) => ({ ok: status < 300, status, json: async () => body });
  if (path === '/api/v1/sessions') return answer(201, { token: 'trk_secret', user: { email: 'ann@example.com' } });
  if (path === '/api/v1/me/settings') {
    return answer(200, { rate_per_hour_minor: '600000000', monthly_budget_minor: '5000000000', paused: false, currency: 'USD', scale: 9 });
  }
  if (path === '/api/v1/me/site-overrides') return answer(200, { overrides: [] });
  if (path === '/api/v1/topups/options') return answer(200, OPTIONS);
  if (path === '/api/v1/topups') {
    calls.push({ path, key: init.headers['Idempotency-Key'], body: JSON.parse(init.body) });
    if (failNext > 0) {
      failNext -= 1;
      return answer(502, { error: { code: 'stripe_unavailable', message: 'Stripe did not answer' } });
    }
    return answer(201, TOPUP);
  }
  if (path === '/api/v1/topups/7') {
    return answer(200, { ...TOPUP, state, checkout_url: state === 'pending' ? TOPUP.checkout_url : null });
  }
  return answer(404, { error: { code: 'not_found', message: 'no' } });
};
/** @type {string[]} every tab the background opened */
const opened = [];
/** @type {any} */ (globalThis).chrome.tabs.create = async (/** @type {{url: string}} */ o) => void opened.push(o.url);

const engine = await import('../background/engine.js');
const topups = await import('../background/topups.js');

test('the background: one key across retries, the page in a tab, the credit followed', async () => {
  await engine.load();
  await engine.signIn('sign-in', 'ann@example.com', 'password-123');
  await waitFor(() => ws()?.sent.length === 1); // the hello
  const money = { balance_minor: '0', month_spent_minor: '0', month_budget_minor: '5000000000', currency: 'USD', scale: 9 };
  ws().serve({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money });
  assert.deepEqual((await topups.options()).card?.presets, ['5000000000', '10000000000']);

  await assert.rejects(topups.start('3000000000000'), { code: 'topup_amount_out_of_range' });
  assert.equal(calls.length, 0);

  failNext = 1;
  const topup = await topups.start('5000000000');
  assert.equal(topup.id, 7);
  assert.equal(calls.length, 2);
  assert.equal(calls[0].key, calls[1].key, 'a retry keeps the Idempotency-Key');
  assert.deepEqual(calls[0].body, { amount_minor: '5000000000', currency: 'USD' });
  assert.deepEqual(opened, ['https://checkout.stripe.com/c/pay/cs_test_a1']);

  assert.equal((await topups.status())?.state, 'pending');
  const asked = () => ws().sent.filter((m) => m.type === 'balance').length;
  const before = asked();
  state = 'credited';
  assert.equal((await topups.status())?.state, 'credited');
  await topups.status();
  assert.equal(asked(), before + 1, 'the balance is asked for once, when the credit is seen');

  failNext = 3; // Stripe keeps not answering: the reader is told
  await assert.rejects(topups.start('5000000000'), { code: 'stripe_unavailable' });

  await engine.signOut(); // stops the stream socket and its timers
  await assert.rejects(topups.status(), { code: 'signed_out' });
});
