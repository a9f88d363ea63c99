import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { KeySet, KeySetError, createVerifier } from '../index.js';
import { CONTEXT, claims, createTestIssuer } from '../testing/receipt-signer.js';

const issuer = createTestIssuer('key-a');
const successor = createTestIssuer('key-b');

/**
 * @param {unknown} doc
 * @param {string} code
 */
async function rejectsJwks(doc, code) {
  await assert.rejects(KeySet.fromJwks(doc), (error) => error instanceof KeySetError && error.code === code);
}

describe('KeySet.fromJwks', () => {
  test('takes an object or JSON text', async () => {
    assert.deepEqual((await KeySet.fromJwks(issuer.jwks)).kids, ['key-a']);
    assert.deepEqual((await KeySet.fromJwks(JSON.stringify(issuer.jwks))).kids, ['key-a']);
  });

  test('skips keys that are not Ed25519 signing keys', async () => {
    const [key] = issuer.jwks.keys;
    const doc = { keys: [
      { kty: 'RSA', n: 'AQAB', e: 'AQAB', kid: 'rsa' },
      { kty: 'OKP', crv: 'X25519', x: key.x, kid: 'x25519' },
      { ...key, kid: 'es', alg: 'ES256' },
      { ...key, kid: 'enc', use: 'enc' },
      { ...key, alg: undefined },
    ] };
    assert.deepEqual((await KeySet.fromJwks(doc)).kids, ['key-a']);
  });

  test('refuses broken Ed25519 keys and unusable sets', async () => {
    const [key] = issuer.jwks.keys;
    await rejectsJwks({ keys: [{ ...key, x: key.x.slice(0, -2) }] }, 'invalid_jwks');
    await rejectsJwks({ keys: [{ ...key, x: `${key.x}=` }] }, 'invalid_jwks');
    await rejectsJwks({ keys: [{ ...key, kid: '../a' }] }, 'invalid_jwks');
    await rejectsJwks({ keys: [{ ...key, d: key.x }] }, 'invalid_jwks');
    await rejectsJwks({ keys: [key, key] }, 'invalid_jwks');
    await rejectsJwks({ keys: [key, 'junk'] }, 'invalid_jwks');
    await rejectsJwks({ keys: [{ kty: 'RSA', kid: 'rsa' }] }, 'invalid_jwks');
    await rejectsJwks({ keys: 'none' }, 'invalid_jwks');
    await rejectsJwks('{"keys": [', 'invalid_jwks');
    await rejectsJwks(`{"keys":[],"keys":${JSON.stringify([key])}}`, 'invalid_jwks');
  });
});

/**
 * A fake JWKS endpoint with a controllable clock: `docs` is served in turn (the last one repeats).
 * @param {...unknown} docs
 */
function fakeService(...docs) {
  class FakeService {
    calls = 0;
    nowMs = 0;
    /** @type {null | Error} */
    failWith = null;
    /** @type {import('../keys.js').FetchLike} */
    fetch = async () => {
      const doc = docs[Math.min(this.calls, docs.length - 1)];
      this.calls += 1;
      if (this.failWith !== null) throw this.failWith;
      return { ok: true, status: 200, text: async () => JSON.stringify(doc) };
    };
    clock = () => this.nowMs;
  }
  return new FakeService();
}

describe('KeySet.fromUrl', () => {
  const url = 'https://trickle.test/.well-known/jwks.json';
  const verifyAt = (/** @type {KeySet} */ keys, /** @type {string} */ token) =>
    createVerifier({ ...CONTEXT, keys }).verify(token, { now: CONTEXT.now });

  test('50 forged kids cause at most one refetch per interval', async () => {
    const service = fakeService(issuer.jwks);
    const keys = await KeySet.fromUrl(url, { fetch: service.fetch, nowMs: service.clock, refreshIntervalMs: 300_000 });
    assert.equal(service.calls, 1);
    const forged = Array.from({ length: 50 }, (_, i) => createTestIssuer(`forged-${i}`).sign(claims()));
    const storm = () => Promise.all(forged.map((token) => assert.rejects(verifyAt(keys, token), { code: 'unknown_kid' })));

    service.nowMs = 10_000; // within the interval of the first fetch: no refetch at all
    await storm();
    assert.equal(service.calls, 1);

    service.nowMs = 300_000; // interval over: the whole storm shares one refetch
    await storm();
    for (const token of forged) await assert.rejects(verifyAt(keys, token), { code: 'unknown_kid' });
    assert.equal(service.calls, 2);

    service.nowMs = 600_000;
    await storm();
    assert.equal(service.calls, 3);
  });

  test('an unknown kid after the interval picks up a rotated key', async () => {
    const service = fakeService(issuer.jwks, { keys: [...issuer.jwks.keys, ...successor.jwks.keys] });
    const keys = await KeySet.fromUrl(url, { fetch: service.fetch, nowMs: service.clock });
    const token = successor.sign(claims());
    await assert.rejects(verifyAt(keys, token), { code: 'unknown_kid' });
    service.nowMs = 300_000;
    assert.equal((await verifyAt(keys, token)).tot, 1000000n);
    assert.deepEqual(keys.kids, ['key-a', 'key-b']);
  });

  test('a stale set is refetched, so a retired key drops out', async () => {
    const service = fakeService(issuer.jwks, successor.jwks);
    const keys = await KeySet.fromUrl(url, { fetch: service.fetch, nowMs: service.clock });
    const token = issuer.sign(claims());
    await verifyAt(keys, token);
    service.nowMs = 300_000;
    await assert.rejects(verifyAt(keys, token), { code: 'unknown_kid' });
    assert.equal(service.calls, 2);
  });

  test('a failed refetch keeps the previous keys', async () => {
    const service = fakeService(issuer.jwks);
    const keys = await KeySet.fromUrl(url, { fetch: service.fetch, nowMs: service.clock });
    service.failWith = new Error('connection reset');
    service.nowMs = 300_000;
    await verifyAt(keys, issuer.sign(claims()));
    assert.equal(service.calls, 2);
  });

  test('the first fetch must succeed', async () => {
    const notFound = /** @type {import('../keys.js').FetchLike} */ (async () => ({ ok: false, status: 404, text: async () => '' }));
    await assert.rejects(KeySet.fromUrl(url, { fetch: notFound }), { name: 'KeySetError', code: 'jwks_fetch_failed' });
    const notJson = /** @type {import('../keys.js').FetchLike} */ (async () => ({ ok: true, status: 200, text: async () => '<html>' }));
    await assert.rejects(KeySet.fromUrl(url, { fetch: notJson }), { code: 'invalid_jwks' });
  });

  test('a fetch that hangs times out', async () => {
    /** @type {import('../keys.js').FetchLike} */
    const hang = (_, { signal }) => new Promise((_resolve, reject) => {
      signal.addEventListener('abort', () => reject(signal.reason));
    });
    await assert.rejects(KeySet.fromUrl(url, { fetch: hang, timeoutMs: 20 }), { code: 'jwks_fetch_failed', message: /timed out after 20 ms/ });
  });
});
