// The pure parts of one-time payments: the page's request, amounts, the auto-approve decision.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AmountError } from '../shared/amounts.js';
import { MessageError, parsePageMessage, parseUiMessage } from '../shared/messages.js';
import {
  RESULT_CODES,
  RequestError,
  addSpent,
  autoApprove,
  dayKey,
  parsePaymentRequest,
  readerAmount,
  requestMinor,
  resultCode,
  retryable,
  spentOn,
  tipOrderRef,
} from '../shared/payments.js';

const good = () => ({
  source: 'trickle-page',
  type: 'payment-request',
  id: 'req_1-A',
  amount: '0.25',
  currency: 'USD',
  description: 'One article: “Rivers”',
  orderRef: 'article-42',
  paymentPointer: 'http://127.0.0.1:8420/p/demo',
  binding: 'visitor-7',
});

test('a valid request is read field by field', () => {
  assert.deepEqual(parsePaymentRequest(good(), { envelope: true }), {
    id: 'req_1-A',
    amount: '0.25',
    currency: 'USD',
    description: 'One article: “Rivers”',
    orderRef: 'article-42',
    paymentPointer: 'http://127.0.0.1:8420/p/demo',
    binding: 'visitor-7',
  });
  const { binding: _b, description: _d, ...minimal } = good();
  const parsed = parsePaymentRequest(minimal, { envelope: true });
  assert.equal(parsed.binding, null);
  assert.equal(parsed.description, '');
  assert.equal(parsePaymentRequest({ ...good(), binding: null }, { envelope: true }).binding, null);
  assert.equal(parsePaymentRequest({ ...good(), description: 'é'.repeat(200) }, { envelope: true }).description.length, 200);
});

test('every field is checked strictly', () => {
  const bad = [
    null,
    [],
    'payment-request',
    { ...good(), source: 'trickle-extension' },
    { ...good(), type: 'payment-result' },
    { ...good(), extra: 1 },
    { ...good(), id: '' },
    { ...good(), id: 'x'.repeat(65) },
    { ...good(), id: 'a b' },
    { ...good(), id: 7 },
    { ...good(), amount: 0.25 },
    { ...good(), amount: '0' },
    { ...good(), amount: '0.00' },
    { ...good(), amount: '-1' },
    { ...good(), amount: '+1' },
    { ...good(), amount: '1e3' },
    { ...good(), amount: '01.5' },
    { ...good(), amount: '.5' },
    { ...good(), amount: '1.' },
    { ...good(), amount: ' 1' },
    { ...good(), amount: '1'.repeat(41) },
    { ...good(), currency: 'usd' },
    { ...good(), currency: 'US' },
    { ...good(), description: 'x'.repeat(201) },
    { ...good(), description: 5 },
    { ...good(), orderRef: '' },
    { ...good(), orderRef: 'x'.repeat(129) },
    { ...good(), orderRef: 'tab\there' },
    { ...good(), orderRef: 'café' },
    { ...good(), paymentPointer: 'javascript:alert(1)' },
    { ...good(), paymentPointer: '/p/demo' },
    { ...good(), paymentPointer: 'https://user:pw@t.example/p/a' },
    { ...good(), paymentPointer: `https://t.example/${'p'.repeat(300)}` },
    { ...good(), binding: '' },
    { ...good(), binding: 'x'.repeat(257) },
    { ...good(), binding: 42 },
  ];
  for (const raw of bad) {
    assert.throws(() => parsePaymentRequest(raw, { envelope: true }), RequestError, JSON.stringify(raw)?.slice(0, 80));
  }
  // Without the envelope (as the background sees it), source and type are unknown fields.
  assert.throws(() => parsePaymentRequest(good()), RequestError);
  const { source: _s, type: _t, ...inner } = good();
  assert.equal(parsePaymentRequest(inner).id, 'req_1-A');
});

test('the forwarded runtime message and the new ui messages are strict', () => {
  const { source: _s, type: _t, ...request } = good();
  const page = '0b8e3f1a-7c1d-4e2f-9a3b-5c6d7e8f9a0b';
  const parsed = parsePageMessage({ type: 'page/payment', page, request });
  assert.equal(parsed.type, 'page/payment');
  assert.throws(() => parsePageMessage({ type: 'page/payment', page, request: { ...request, amount: '1e2' } }), MessageError);
  assert.throws(() => parsePageMessage({ type: 'page/payment', page, request, more: 1 }), MessageError);
  const key = crypto.randomUUID();
  assert.deepEqual(parseUiMessage({ type: 'ui/payment-decide', request: key, approve: true }), { type: 'ui/payment-decide', request: key, approve: true });
  assert.throws(() => parseUiMessage({ type: 'ui/payment-decide', request: key, approve: 'yes' }), MessageError);
  assert.throws(() => parseUiMessage({ type: 'ui/payment-get', request: '../x' }), MessageError);
  assert.deepEqual(parseUiMessage({ type: 'ui/tip', tabId: 3, amount: '0.50' }), { type: 'ui/tip', tabId: 3, amount: '0.50' });
  assert.throws(() => parseUiMessage({ type: 'ui/tip', tabId: -1, amount: '0.50' }), MessageError);
  assert.deepEqual(parseUiMessage({ type: 'ui/daily-cap', cap: '' }), { type: 'ui/daily-cap', cap: '' });
  assert.deepEqual(parseUiMessage({ type: 'ui/auto-approve', tabId: 1, limit: '0.25' }), { type: 'ui/auto-approve', tabId: 1, limit: '0.25' });
});

test('amounts: major units to minor units without floats', () => {
  assert.equal(requestMinor('0.25', 9), '250000000');
  assert.equal(requestMinor('0.000000001', 9), '1');
  assert.equal(requestMinor('12', 2), '1200');
  assert.throws(() => requestMinor('0.0000000001', 9), AmountError, 'more digits than the scale');
  assert.throws(() => requestMinor('0.000', 9), AmountError, 'zero');
  assert.throws(() => requestMinor('9223372036.854775808', 9), AmountError, '2^63');
  assert.equal(requestMinor('9223372036.854775807', 9), '9223372036854775807');
  // 0.1 + 0.2 is exact here.
  assert.equal(BigInt(requestMinor('0.1', 9)) + BigInt(requestMinor('0.2', 9)), BigInt(requestMinor('0.3', 9)));

  assert.equal(readerAmount(' 0.50 ', 9, { positive: true }), '500000000');
  assert.equal(readerAmount('', 9, { allowBlank: true }), null);
  assert.equal(readerAmount('0', 9, { allowBlank: true }), '0');
  assert.throws(() => readerAmount('', 9), AmountError);
  assert.throws(() => readerAmount('0', 9, { positive: true }), AmountError);
  assert.throws(() => readerAmount('-1', 9), AmountError);
  assert.throws(() => readerAmount('1,50', 9), AmountError);
  assert.throws(() => readerAmount('1e2', 9), AmountError);
});

const USD = (/** @type {string} */ major) => /** @type {string} */ (readerAmount(major, 9));

test('auto-approve: no limit, under and over the limit', () => {
  const base = { capMinor: USD('1.00'), spent: null, today: '2026-11-30' };
  assert.deepEqual(autoApprove({ ...base, amountMinor: USD('0.10'), limitMinor: null }), { auto: false, reason: 'no_limit' });
  assert.deepEqual(autoApprove({ ...base, amountMinor: USD('0.10'), limitMinor: '0' }), { auto: false, reason: 'no_limit' });
  assert.deepEqual(autoApprove({ ...base, amountMinor: USD('0.25'), limitMinor: USD('0.25') }), { auto: true, reason: 'ok' });
  assert.deepEqual(autoApprove({ ...base, amountMinor: '250000001', limitMinor: USD('0.25') }), { auto: false, reason: 'over_limit' });
});

test('auto-approve: the daily cap counts what was auto-approved today only', () => {
  const limitMinor = USD('0.50');
  const capMinor = USD('1.00');
  let spent = addSpent(null, '2026-11-30', BigInt(USD('0.50')));
  spent = addSpent(spent, '2026-11-30', BigInt(USD('0.40')));
  assert.equal(spentOn(spent, '2026-11-30'), BigInt(USD('0.90')));
  assert.deepEqual(autoApprove({ amountMinor: USD('0.10'), limitMinor, capMinor, spent, today: '2026-11-30' }), { auto: true, reason: 'ok' });
  assert.deepEqual(autoApprove({ amountMinor: USD('0.11'), limitMinor, capMinor, spent, today: '2026-11-30' }), { auto: false, reason: 'over_cap' });
  // Day rollover: yesterday's spending does not count.
  assert.equal(spentOn(spent, '2026-12-01'), 0n);
  assert.deepEqual(autoApprove({ amountMinor: USD('0.50'), limitMinor, capMinor, spent, today: '2026-12-01' }), { auto: true, reason: 'ok' });
  assert.deepEqual(addSpent(spent, '2026-12-01', 5n), { day: '2026-12-01', minor: '5' });
  // Giving a reservation back never goes below zero.
  assert.deepEqual(addSpent(spent, '2026-11-30', -BigInt(USD('2.00'))), { day: '2026-11-30', minor: '0' });
  // A cap of zero: nothing goes through without asking.
  assert.equal(autoApprove({ amountMinor: '1', limitMinor, capMinor: '0', spent: null, today: '2026-11-30' }).auto, false);
  // Damaged records count as nothing rather than throwing.
  assert.equal(spentOn(/** @type {any} */ ({ day: '2026-11-30', minor: '1.5' }), '2026-11-30'), 0n);
});

test('the day is the local calendar day', () => {
  assert.equal(dayKey(new Date(2026, 0, 5, 23, 59, 59)), '2026-01-05');
  assert.equal(dayKey(new Date(2026, 0, 6, 0, 0, 0)), '2026-01-06');
  assert.equal(dayKey(new Date(2026, 11, 31, 12)), '2026-12-31');
});

test('result codes: the contract set only', () => {
  for (const code of RESULT_CODES) assert.equal(resultCode(code), code);
  assert.equal(resultCode('unauthenticated'), 'signed_out');
  assert.equal(resultCode('session_origin_mismatch'), 'signed_out');
  assert.equal(resultCode('bad_response'), 'service_unreachable');
  assert.equal(resultCode('validation_failed'), 'invalid_request');
  assert.equal(resultCode('currency_mismatch'), 'invalid_request');
  assert.equal(resultCode('idempotency_key_reused'), 'invalid_request');
  for (const code of ['x', 'internal', 'rate_limited', 'invalid_amount']) assert.ok(RESULT_CODES.includes(resultCode(code)));
});

test('only failures without an answer or with a 5xx are retried', () => {
  assert.equal(retryable({ code: 'service_unreachable', status: 0 }), true);
  assert.equal(retryable({ code: 'bad_response', status: 502 }), true);
  assert.equal(retryable({ code: 'insufficient_funds', status: 409 }), false);
  assert.equal(retryable({ code: 'validation_failed', status: 422 }), false);
});

test('tip order references are fresh and valid order refs', () => {
  const a = tipOrderRef();
  assert.match(a, /^tip-[0-9a-f]{32}$/);
  assert.notEqual(a, tipOrderRef());
});
