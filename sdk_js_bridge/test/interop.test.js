// Receipts are plain JWS (docs/receipts.md §6): panva/jose and this verifier must agree.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';

import { SignJWT, createLocalJWKSet, jwtVerify } from 'jose';

import { KeySet, createVerifier } from '../index.js';
import { CONTEXT, claims, createTestIssuer } from '../testing/receipt-signer.js';
import { loadVectors } from '../testing/vectors.js';

describe('a token signed by jose', () => {
  test('verifies with this verifier', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const kid = 'jose-key';
    const jwks = { keys: [{ ...publicKey.export({ format: 'jwk' }), kid, alg: 'EdDSA', use: 'sig' }] };
    const token = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'trickle-receipt+jwt' })
      .sign(privateKey);
    const verifier = createVerifier({ ...CONTEXT, keys: await KeySet.fromJwks(jwks) });
    const receipt = await verifier.verify(token, { now: CONTEXT.now });
    assert.equal(receipt.tot, 1000000n);
    assert.equal(receipt.seq, 3);
  });
});

/**
 * @param {string} token
 * @param {{keys: object[]}} jwks
 * @param {{issuer: string, audience: string, now: number, leewayS: number}} context
 */
async function verifyWithJose(token, jwks, { issuer, audience, now, leewayS }) {
  const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(/** @type {any} */ (jwks)), {
    algorithms: ['EdDSA'], issuer, audience, typ: 'trickle-receipt+jwt', currentDate: new Date(now * 1000),
    // jose treats exp as exclusive (now < exp + tolerance); the spec's rule 15 is inclusive.
    clockTolerance: leewayS + 1,
  });
  return { payload, protectedHeader };
}

describe('tokens signed by this project verify with jose', () => {
  test('a receipt from the test signer', async () => {
    const issuer = createTestIssuer();
    const { payload } = await verifyWithJose(issuer.sign(claims()), issuer.jwks, { ...CONTEXT, leewayS: 60 });
    assert.equal(payload.tot, '1000000');
  });

  test('every valid shared vector', async () => {
    const vectors = loadVectors(); // a missing file fails here too (and in vectors.test.js)
    const { issuer, audience, now, leeway_s: leewayS } = vectors.verifier;
    for (const vector of vectors.valid) {
      const { payload, protectedHeader } = await verifyWithJose(vector.token, vectors.jwks, { issuer, audience, now: vector.now ?? now, leewayS });
      assert.equal(protectedHeader.alg, 'EdDSA', vector.name);
      assert.deepEqual(payload, vector.claims, vector.name);
    }
  });
});
