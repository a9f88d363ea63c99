// The Node purchase endpoint (purchases.js) behind a real node:http server on an ephemeral port:
// one-time receipts signed by a throwaway key, and the one-time vectors of tests/vectors/receipts.json.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { KeySet } from '../keys.js';
import { MAX_PURCHASE_BODY_BYTES, MemoryPurchaseStore, PURCHASE_ERROR_CODES, PurchaseError, createPurchaseHandler } from '../purchases.js';
import * as server from '../server.js';
import { serve as serveAt, sessionOf } from '../testing/http-server.js';
import { CONTEXT, claims, createTestIssuer } from '../testing/receipt-signer.js';
import { loadVectors } from '../testing/vectors.js';

const vectors = loadVectors();
const vectorKeys = await KeySet.fromJwks(vectors.jwks);
const issuer = createTestIssuer();
const testKeys = await KeySet.fromJwks(issuer.jwks);

/** The site's catalogue: order reference → price (minor units at scale 9). */
const CATALOGUE = new Map([
  ['article-42', { amountMinor: 250000000n, currency: 'USD' }],
  ['article-43', { amountMinor: '100000000', currency: 'USD' }],
  ['milli-article', { amountMinor: 250n, currency: 'USD', scale: 3 }],
]);

/** @param {Parameters<typeof serveAt>[0]} handler */
const serve = (handler) => serveAt(handler, '/trickle/purchase');

/**
 * @param {string} url
 * @param {string | null} session
 * @param {unknown} body  JSON-encoded unless a string
 * @param {{method?: string, headers?: Record<string, string>}} [init]
 * @returns {Promise<{status: number, body: any}>}
 */
async function post(url, session, body, { method = 'POST', headers = {} } = {}) {
  const response = await fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json', ...(session === null ? {} : { Cookie: `session=${session}` }), ...headers },
    body: method === 'GET' ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

/**
 * A one-time receipt as the service issues it (docs/payments.md), with changes.
 * @param {Record<string, unknown>} [overrides]
 */
function oneTime(overrides = {}) {
  return issuer.sign(claims({
    sid: `pay${Math.random().toString(36).slice(2, 14)}`, seq: 1, amt: '250000000', tot: '250000000',
    jti: `j${Math.random().toString(36).slice(2, 14)}`, otp: true, ord: 'article-42', ...overrides,
  }));
}

describe('the purchase endpoint', () => {
  /** @type {unknown[]} */
  const internalErrors = [];
  const store = new MemoryPurchaseStore();
  const handler = createPurchaseHandler({
    keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees],
    sessionOf, store, clock: () => CONTEXT.now,
    priceOf: (orderRef) => (orderRef === 'broken-price' ? /** @type {any} */ ({ amountMinor: 250, currency: 'USD' }) : CATALOGUE.get(orderRef) ?? null),
    onError: (error) => internalErrors.push(error),
  });
  /** @type {{url: string, close: () => Promise<void>}} */
  let site;
  before(async () => {
    site = await serve(handler);
  });
  after(() => site.close());

  test('a one-time receipt for the order at its price buys it: the answer, and hasPurchased', async () => {
    assert.equal(await handler.hasPurchased('v-buyer', 'article-42'), false);
    const { status, body } = await post(site.url, 'v-buyer', { receipt: oneTime(), order_ref: 'article-42' });
    assert.equal(status, 200);
    assert.deepEqual(body, { code: 'ok', order_ref: 'article-42', amount_minor: '250000000', currency: 'USD', scale: 9 });
    assert.equal(await handler.hasPurchased('v-buyer', 'article-42'), true);
    assert.equal(await handler.hasPurchased('v-buyer', 'article-43'), false);
    assert.equal(await handler.hasPurchased('v-other', 'article-42'), false);
  });

  test('paying more than the price is accepted; the answer names what was paid', async () => {
    const { status, body } = await post(site.url, 'v-generous', { receipt: oneTime({ amt: '300000000', tot: '300000000' }), order_ref: 'article-42' });
    assert.equal(status, 200);
    assert.equal(body.amount_minor, '300000000');
  });

  test('a replayed receipt buys nothing twice: same visitor → the same purchase, another visitor → already_used', async () => {
    const receipt = oneTime({ sid: 'replayedPayment1' });
    const first = await post(site.url, 'v-payer', { receipt, order_ref: 'article-42' });
    assert.equal(first.status, 200);
    // The bridge may resend after a lost answer: the same receipt of the same visitor is that purchase.
    const again = await post(site.url, 'v-payer', { receipt, order_ref: 'article-42' });
    assert.deepEqual(again, first);
    const thief = await post(site.url, 'v-thief', { receipt, order_ref: 'article-42' });
    assert.equal(thief.status, 409);
    assert.equal(thief.body.error.code, 'already_used');
    assert.equal(await handler.hasPurchased('v-thief', 'article-42'), false);
  });

  test('a receipt for one order does not unlock another (order_mismatch), even at a lower price', async () => {
    const receipt = oneTime({ sid: 'orderA', ord: 'article-42' });
    const { status, body } = await post(site.url, 'v-switch', { receipt, order_ref: 'article-43' });
    assert.equal(status, 422);
    assert.equal(body.error.code, 'order_mismatch');
    assert.equal(await handler.hasPurchased('v-switch', 'article-43'), false);
    // It still buys its own order afterwards: the refused attempt used nothing up.
    assert.equal((await post(site.url, 'v-switch', { receipt, order_ref: 'article-42' })).status, 200);
  });

  /** @type {[string, Record<string, unknown>, string, number, string][]} */
  const refusals = [
    ['a streamed receipt (no otp)', { otp: undefined, ord: undefined }, 'article-42', 422, 'not_one_time'],
    ['otp false', { otp: false }, 'article-42', 422, 'not_one_time'],
    ['a one-time receipt without ord', { ord: undefined }, 'article-42', 422, 'order_mismatch'],
    ['an ord differing in case', { ord: 'Article-42' }, 'Article-42', 404, 'unknown_order'],
    ['an order the site does not sell', { ord: 'free-lunch' }, 'free-lunch', 404, 'unknown_order'],
    ['one minor unit below the price', { amt: '249999999', tot: '249999999' }, 'article-42', 422, 'amount_too_low'],
    ['another currency', { cur: 'EUR' }, 'article-42', 422, 'wrong_asset'],
    ['another scale', { scale: 6 }, 'article-42', 422, 'wrong_asset'],
    ['a price at its own scale, receipt at 9', { ord: 'milli-article' }, 'milli-article', 422, 'wrong_asset'],
    ['an expired receipt', { iat: CONTEXT.now - 1000, exp: CONTEXT.now - 500 }, 'article-42', 422, 'expired'],
    ['another site', { aud: 'https://evil.example' }, 'article-42', 422, 'wrong_audience'],
    ['another payee', { pay: 'https://trickle.test/p/mallory' }, 'article-42', 422, 'wrong_payee'],
    ['an ord with a newline', { ord: 'article-42\n' }, 'article-42', 422, 'invalid_claim'],
  ];
  for (const [name, overrides, orderRef, status, code] of refusals) {
    test(`${name} buys nothing: ${status} ${code}`, async () => {
      const answer = await post(site.url, 'v-refused', { receipt: oneTime(overrides), order_ref: orderRef });
      assert.equal(answer.status, status);
      assert.equal(answer.body.error.code, code);
      assert.equal(typeof answer.body.error.message, 'string');
      assert.ok(PURCHASE_ERROR_CODES.includes(code));
      assert.equal(await handler.hasPurchased('v-refused', orderRef), false);
    });
  }

  test('a price at its own scale is honoured', async () => {
    const receipt = oneTime({ ord: 'milli-article', scale: 3, amt: '250', tot: '250' });
    const { status, body } = await post(site.url, 'v-milli', { receipt, order_ref: 'milli-article' });
    assert.equal(status, 200);
    assert.deepEqual(body, { code: 'ok', order_ref: 'milli-article', amount_minor: '250', currency: 'USD', scale: 3 });
  });

  test('a forged receipt (signed by another key) is bad_signature', async () => {
    const forger = createTestIssuer();
    const forged = forger.sign(claims({ seq: 1, amt: '250000000', tot: '250000000', otp: true, ord: 'article-42' }));
    const { status, body } = await post(site.url, 'v-forger', { receipt: forged, order_ref: 'article-42' });
    assert.equal(status, 422);
    assert.equal(body.error.code, 'bad_signature');
  });

  test('the same receipt sent by two visitors at once buys for exactly one', async () => {
    const receipt = oneTime({ sid: 'racedPayment' });
    const answers = await Promise.all(['v-race-a', 'v-race-b', 'v-race-c'].map((session) => post(site.url, session, { receipt, order_ref: 'article-42' })));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 409, 409]);
    const owners = await Promise.all(['v-race-a', 'v-race-b', 'v-race-c'].map((session) => handler.hasPurchased(session, 'article-42')));
    assert.equal(owners.filter(Boolean).length, 1);
  });

  /** @type {[string, unknown, string][]} */
  const malformed = [
    ['a JSON array', [], 'validation_failed'],
    ['no order_ref', { receipt: 'x' }, 'validation_failed'],
    ['no receipt', { order_ref: 'article-42' }, 'validation_failed'],
    ['a receipt that is a number', { receipt: 1, order_ref: 'article-42' }, 'validation_failed'],
    ['an empty order_ref', { receipt: 'x', order_ref: '' }, 'validation_failed'],
    ['an order_ref of 129 chars', { receipt: 'x', order_ref: 'o'.repeat(129) }, 'validation_failed'],
    ['a non-ASCII order_ref', { receipt: 'x', order_ref: 'café' }, 'validation_failed'],
    ['a price from the client', { receipt: 'x', order_ref: 'article-42', amount_minor: '1' }, 'validation_failed'],
  ];
  for (const [name, body, code] of malformed) {
    test(`${name} is 422 ${code}`, async () => {
      const answer = await post(site.url, 'v-malformed', body);
      assert.equal(answer.status, 422);
      assert.equal(answer.body.error.code, code);
    });
  }

  test('a receipt that is not a JWS is its verifier code', async () => {
    const answer = await post(site.url, 'v-malformed', { receipt: 'not.a.jws', order_ref: 'article-42' });
    assert.deepEqual([answer.status, answer.body.error.code], [422, 'malformed_jws']);
  });

  test('request errors: method, media type, session, size, JSON', async () => {
    const get = await post(site.url, 'v', null, { method: 'GET' });
    assert.deepEqual([get.status, get.body.error.code], [405, 'method_not_allowed']);
    const form = await post(site.url, 'v', 'receipt=x', { headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
    assert.deepEqual([form.status, form.body.error.code], [415, 'unsupported_media_type']);
    const anonymous = await post(site.url, null, { receipt: oneTime(), order_ref: 'article-42' });
    assert.deepEqual([anonymous.status, anonymous.body.error.code], [401, 'unauthenticated']);
    const huge = await post(site.url, 'v', { receipt: 'x'.repeat(MAX_PURCHASE_BODY_BYTES), order_ref: 'article-42' });
    assert.deepEqual([huge.status, huge.body.error.code], [413, 'body_too_large']);
    const broken = await post(site.url, 'v', '{"receipt": ');
    assert.deepEqual([broken.status, broken.body.error.code], [400, 'malformed_json']);
  });

  test('a price given as a number is a bug in the site: 500 internal_error without details, reported to onError', async () => {
    const before = internalErrors.length;
    const answer = await post(site.url, 'v-bug', { receipt: oneTime({ ord: 'broken-price' }), order_ref: 'broken-price' });
    assert.deepEqual(answer.body, { error: { code: 'internal_error', message: 'the purchase handler failed' } });
    assert.equal(answer.status, 500);
    assert.equal(internalErrors.length, before + 1);
    assert.ok(internalErrors.at(-1) instanceof TypeError);
  });

  test('purchase() is the framework-neutral core: resolves with the answer or rejects with PurchaseError', async () => {
    const answer = await handler.purchase('v-core', oneTime({ ord: 'article-43', amt: '100000000', tot: '100000000' }), 'article-43');
    assert.deepEqual(answer, { code: 'ok', order_ref: 'article-43', amount_minor: '100000000', currency: 'USD', scale: 9 });
    await assert.rejects(handler.purchase('v-core', oneTime({ ord: 'article-43' }), 'article-42'), (error) => {
      assert.ok(error instanceof PurchaseError);
      assert.equal(error.code, 'order_mismatch');
      assert.equal(error.status, 422);
      return true;
    });
    await assert.rejects(handler.purchase('', oneTime(), 'article-42'), TypeError);
  });
});

describe('binding: a receipt from one visitor page buys nothing for another', () => {
  const bindings = new Map([['v-alice', 'binding-alice'], ['v-bob', 'binding-bob']]);
  const handler = createPurchaseHandler({
    keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees],
    sessionOf, clock: () => CONTEXT.now, priceOf: (orderRef) => CATALOGUE.get(orderRef) ?? null,
    bindingOf: (session) => bindings.get(session) ?? null,
  });

  test("the visitor's own binding buys; another's is binding_mismatch; none is binding_mismatch", async () => {
    const receipt = oneTime({ bnd: 'binding-alice', sid: 'boundPayment' });
    await assert.rejects(handler.purchase('v-bob', receipt, 'article-42'), { code: 'binding_mismatch' });
    assert.equal((await handler.purchase('v-alice', receipt, 'article-42')).code, 'ok');
    await assert.rejects(handler.purchase('v-alice', oneTime(), 'article-42'), { code: 'binding_mismatch' });
  });
});

describe('the one-time vectors of tests/vectors/receipts.json', () => {
  const { issuer: iss, audience, payees, now, leeway_s: leewayS } = vectors.verifier;
  const vector = vectors.valid.find((item) => item.claims.ord === 'article-42' && item.claims.bnd !== undefined);

  test('the valid one-time vector buys its order for the session of its binding', async () => {
    assert.ok(vector !== undefined, 'the one-time vector with ord and bnd is missing');
    const handler = createPurchaseHandler({
      keys: vectorKeys, issuer: iss, origin: audience, payees, leewayS, clock: () => now, sessionOf,
      priceOf: (orderRef) => CATALOGUE.get(orderRef) ?? null,
      bindingOf: (session) => (session === 'visitor-7' ? String(vector.binding) : 'another-binding'),
    });
    assert.deepEqual(await handler.purchase('visitor-7', vector.token, 'article-42'), {
      code: 'ok', order_ref: 'article-42', amount_minor: String(vector.claims.amt), currency: 'USD', scale: 9,
    });
    await assert.rejects(handler.purchase('visitor-8', vector.token, 'article-42'), { code: 'binding_mismatch' });
  });

  test('every invalid vector about ord or otp is refused with its code', async () => {
    const handler = createPurchaseHandler({
      keys: vectorKeys, issuer: iss, origin: audience, payees, leewayS, clock: () => now, sessionOf,
      priceOf: () => ({ amountMinor: 1n, currency: 'USD' }),
    });
    const about = vectors.invalid.filter((item) => /\b(ord|otp)\b/.test(item.name));
    assert.ok(about.length >= 15, `only ${about.length} vectors about ord/otp`);
    for (const item of about) {
      await assert.rejects(handler.purchase('visitor-1', item.token, 'article-42'), (error) => {
        assert.ok(error instanceof PurchaseError, item.name);
        assert.equal(error.code, item.code, item.name);
        return true;
      });
    }
  });
});

test('server.js re-exports the purchase endpoint for Node sites', () => {
  assert.equal(server.createPurchaseHandler, createPurchaseHandler);
  assert.equal(server.MemoryPurchaseStore, MemoryPurchaseStore);
});

test('createPurchaseHandler refuses a missing catalogue or session function', () => {
  const base = { keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees] };
  assert.throws(() => createPurchaseHandler(/** @type {any} */ ({ ...base, sessionOf })), TypeError);
  assert.throws(() => createPurchaseHandler(/** @type {any} */ ({ ...base, priceOf: () => null })), TypeError);
  assert.throws(() => createPurchaseHandler(/** @type {any} */ ({ ...base, sessionOf, priceOf: () => null, bindingOf: 'x' })), TypeError);
});
