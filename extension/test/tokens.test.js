// The token wallet (background/tokens.js) against a fake service that evaluates real VOPRF
// batches: refills up to the reserve with the proof checked against the published key, a
// per-reader key detected and its batch dropped, a retry after a crash sending the same
// Idempotency-Key and blinded elements (charged once), expired tokens refunded, sign-out refunds.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { areas } from './fakes.js';
import { EPOCH, FakeTokenService, SESSION_TOKEN, VALUE_MINOR, settleAll } from './fake-token-service.js';
import { ristretto255_oprf } from '../vendor/noble-voprf.js';
import { parseKeyDocument, pickTokens } from '../shared/tokens.js';

const service = new FakeTokenService();
/** @type {any} */ (globalThis).fetch = service.fetch;
areas.local.privatePayments = true;

const engine = await import('../background/engine.js');
const wallet = await import('../background/tokens.js');

/** The issuance calls so far. */
const issuances = () => service.calls.filter((c) => c.path === '/api/v1/tokens');
const stored = () => /** @type {any} */ (areas.local.tokenWallets)[`http://127.0.0.1:8420 ann@example.com`];

test('the token wallet', async (t) => {
  await engine.load();
  await engine.signIn('sign-in', 'ann@example.com', 'password-123');

  await t.test('a refill buys a batch of the one size, each token an evaluation under the published key', async () => {
    await wallet.check();
    assert.equal(issuances().length, 1);
    const call = issuances()[0];
    assert.equal(call.headers.Authorization, `Bearer ${SESSION_TOKEN}`);
    assert.match(call.headers['Idempotency-Key'], /^[0-9a-f-]{36}$/);
    assert.equal(call.body.epoch, EPOCH);
    assert.equal(call.body.blinded.length, 10);
    assert.equal(wallet.held(), 10);
    assert.equal(service.balance, 5_000_000_000n - 10n * VALUE_MINOR);
    for (const token of stored().tokens) assert.ok(service.valid(token), 'the service accepts every token');
    assert.equal(new Set(stored().tokens.map((/** @type {any} */ tk) => tk.input)).size, 10);
    assert.equal(stored().issuance, null);
    assert.equal(wallet.summary().heldMinor, (10n * VALUE_MINOR).toString());
  });

  await t.test('above the low mark nothing is bought; the reserve is never passed', async () => {
    await wallet.check();
    assert.equal(issuances().length, 1);
    const taken = await wallet.take('s1', 3); // 7 left: below the low mark (10)
    assert.equal(taken?.length, 3);
    await wallet.spent('s1');
    await wallet.check();
    assert.equal(issuances().length, 2);
    assert.equal(issuances()[1].body.blinded.length, 10, 'every batch of the one size');
    assert.equal(wallet.held(), 17, 'within the reserve of 20');
  });

  await t.test('a service evaluating with a key of the reader\'s own is caught; the batch is dropped', async () => {
    await wallet.take('s2', 8);
    await wallet.spent('s2');
    service.readerKey = ristretto255_oprf.voprf.generateKeyPair();
    await wallet.check();
    assert.equal(issuances().length, 3, 'the batch was bought');
    assert.equal(wallet.held(), 9, 'none of its tokens kept');
    assert.equal(wallet.summary().error, 'token_key_mismatch');
    assert.equal(stored().issuance, null);
    await wallet.check();
    assert.equal(issuances().length, 3, 'no more money goes to a service that did that');
    service.readerKey = null;
  });

  await t.test('a retry after a crash sends the same key and blinded elements, and is charged once', async () => {
    const w = wallet.current();
    assert.ok(w);
    w.error = null; // (the reader signed in again after the key mismatch)
    service.loseAnswers = 1;
    const before = service.balance;
    await wallet.check();
    assert.equal(issuances().length, 4);
    assert.equal(wallet.held(), 9, 'no answer: nothing kept yet');
    const pending = stored().issuance;
    assert.ok(pending, 'the issuance was stored before it was sent');
    assert.equal(pending.key, issuances()[3].headers['Idempotency-Key']);
    // The worker dies and starts again: everything comes from storage.
    await wallet.load();
    await wallet.check();
    assert.equal(issuances().length, 5);
    assert.equal(issuances()[4].headers['Idempotency-Key'], issuances()[3].headers['Idempotency-Key']);
    assert.deepEqual(issuances()[4].body, issuances()[3].body);
    assert.equal(wallet.held(), 19);
    assert.equal(service.balance, before - 10n * VALUE_MINOR, 'charged once');
    for (const token of stored().tokens) assert.ok(service.valid(token));
  });

  await t.test('tokens out when the worker died are unsure: spent again only, never refunded', async () => {
    const out = await wallet.take('s3', 2);
    assert.ok(out);
    assert.equal(Object.keys(stored().spending).length, 1, 'recorded as out before they were sent');
    await wallet.load(); // died while they were out
    assert.equal(stored().unsure.length, 2);
    const w = wallet.current();
    assert.equal(w?.unsure.length, 2);
    const next = await wallet.take('s4', 5);
    assert.equal(next?.length, 1, 'an unsure token goes out alone');
    await wallet.spent('s4');
  });

  await t.test('tokens of an epoch no longer published are refunded', async () => {
    const w = wallet.current();
    assert.ok(w);
    w.tokens.push({ ...w.tokens[0], epoch: 202501 });
    const old = w.tokens.at(-1);
    await wallet.check();
    const refund = service.calls.filter((c) => c.path === '/api/v1/tokens/refund');
    assert.equal(refund.length, 1);
    assert.deepEqual(refund[0].body.tokens, [old]);
    assert.ok(!w.tokens.includes(/** @type {any} */ (old)));
  });

  await t.test('a larger reserve is refilled in one look, in batches of the one size', async () => {
    await wallet.setReserve(60);
    const before = issuances().length;
    const had = wallet.held();
    assert.ok(had < 30, 'below the new low mark');
    await wallet.check();
    const batches = issuances().slice(before).map((c) => c.body.blinded.length);
    assert.ok(batches.length >= 2 && batches.every((n) => n === 10), `${batches}`);
    assert.ok(wallet.held() >= 30 && wallet.held() <= 60, `${wallet.held()}`);
    await assert.rejects(wallet.setReserve(5000), /reserve/);
    await assert.rejects(wallet.setReserve(5), /reserve/, 'a reserve below two batches');
  });

  await t.test('signing out refunds the tokens held, with the session, before it ends', async () => {
    const held = wallet.current()?.tokens.length ?? 0;
    assert.ok(held > 0);
    const balance = service.balance;
    await engine.signOut();
    const calls = service.calls.map((c) => c.path);
    const refundAt = calls.lastIndexOf('/api/v1/tokens/refund');
    assert.ok(refundAt >= 0 && refundAt < calls.lastIndexOf('/api/v1/sessions/current'), 'refund first, then the session ends');
    const refund = service.calls[refundAt];
    assert.equal(refund.body.tokens.length, held);
    assert.equal(refund.headers.Authorization, `Bearer ${SESSION_TOKEN}`);
    assert.equal(service.balance, balance + BigInt(held) * VALUE_MINOR);
    assert.equal(stored().tokens.length, 0);
    assert.equal(stored().refund, null);
  });
});

test('the pure token rules', () => {
  const keys = parseKeyDocument(service.keyDocument());
  const held = [{ epoch: EPOCH, input: 'a', output: 'b' }];
  assert.equal(pickTokens(held, 2, keys, 'USD', Date.now()), null);
  assert.equal(pickTokens(held, 1, keys, 'EUR', Date.now()), null, 'another currency\'s key');
  void settleAll;
});
