// The shared vectors (tests/vectors/receipts.json) pin the behaviour of every Trickle verifier.
// A missing file is a failure, never a skip.
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { CreditTracker, KeySet, RECEIPT_ERROR_CODES, ReceiptError, createVerifier } from '../index.js';
import { VECTORS_URL, loadVectors } from '../testing/vectors.js';

const CLAIM_NAMES = ['iss', 'aud', 'pay', 'sid', 'seq', 'amt', 'tot', 'cur', 'scale', 'iat', 'exp', 'jti', 'bnd', 'otp', 'ord'];

/** @type {import('../testing/vectors.js').VectorFile | null} */
let vectors = null;
/** @type {unknown} */
let loadError = null;
try {
  vectors = loadVectors();
} catch (error) {
  loadError = error;
}

test('the shared vector file is present and well-formed', () => {
  assert.equal(loadError, null, `cannot load ${fileURLToPath(VECTORS_URL)}: ${loadError}`);
  assert.ok(vectors !== null && vectors.valid.length > 0 && vectors.invalid.length > 0 && vectors.credit.length > 0);
});

if (vectors !== null) {
  const file = vectors;
  const keys = await KeySet.fromJwks(file.jwks);
  const { issuer, audience, payees, now, leeway_s: leewayS } = file.verifier;
  const verifier = createVerifier({ issuer, audience, payees, keys, leewayS, clock: () => now });
  /** @param {{binding: string | null, now: number | null}} vector */
  const optionsOf = (vector) => ({ binding: vector.binding, now: vector.now ?? now });

  describe('valid vectors', () => {
    for (const vector of file.valid) {
      test(vector.name, async () => {
        const receipt = await verifier.verify(vector.token, optionsOf(vector));
        /** @type {Record<string, unknown>} */
        const got = {};
        /** @type {Record<string, unknown>} */
        const expected = {};
        for (const name of CLAIM_NAMES) {
          const value = /** @type {Record<string, unknown>} */ (receipt)[name];
          got[name] = typeof value === 'bigint' ? value.toString() : value;
          expected[name] = Object.hasOwn(vector.claims, name) ? vector.claims[name] : { bnd: null, otp: false, ord: null }[name];
        }
        // The Python verifier's names (one_time, order_ref) for the same claims.
        assert.equal(receipt.oneTime, expected.otp);
        assert.equal(receipt.orderRef, expected.ord);
        assert.equal(typeof receipt.amt, 'bigint');
        assert.equal(typeof receipt.tot, 'bigint');
        assert.deepEqual(got, expected);
        assert.equal(receipt.token, vector.token);
      });
    }
  });

  describe('invalid vectors', () => {
    for (const vector of file.invalid) {
      test(`${vector.name} → ${vector.code}`, async () => {
        assert.ok(RECEIPT_ERROR_CODES.includes(/** @type {any} */ (vector.code)), `unknown code ${vector.code}`);
        await assert.rejects(verifier.verify(vector.token, optionsOf(vector)), (error) => {
          assert.ok(error instanceof ReceiptError, `expected ReceiptError, got ${error}`);
          assert.equal(error.code, vector.code, error.message);
          return true;
        });
      });
    }
  });

  describe('credit sequences', () => {
    for (const sequence of file.credit) {
      test(sequence.name, async () => {
        const tracker = new CreditTracker();
        const credited = [];
        for (const step of sequence.steps) credited.push(String(await tracker.credit(await verifier.verify(step.token))));
        assert.deepEqual(credited, sequence.steps.map((step) => step.credited));
      });
    }
  });

  // docs/receipts.md §3.1: the configured issuer and audience are normalised, or refused.
  describe('configured origins', () => {
    for (const vector of file.origins) {
      test(`${vector.name}: ${JSON.stringify(vector.configured)} → ${vector.origin ?? 'refused'}`, async () => {
        const configured = vector.configured;
        if (vector.origin === null) {
          for (const option of ['issuer', 'audience']) {
            assert.throws(() => createVerifier({ issuer, audience, payees, keys, [option]: configured }), (error) => {
              assert.ok(error instanceof TypeError, String(error));
              assert.match(error.message, new RegExp(`expected ${option} to be an http\\(s\\) origin`));
              return true;
            });
          }
          return;
        }
        const configuredVerifier = createVerifier({ issuer: configured, audience: configured, payees, keys, leewayS });
        const receipt = await configuredVerifier.verify(vector.token, { now });
        assert.equal(receipt.iss, vector.origin);
        assert.equal(receipt.aud, vector.origin);
      });
    }
  });

  test('flipping any bit of the first valid vector is rejected', async () => {
    const vector = file.valid[0];
    for (let index = 0; index < vector.token.length; index += 1) {
      for (let bit = 0; bit < 8; bit += 1) {
        const token = vector.token.slice(0, index) + String.fromCharCode(vector.token.charCodeAt(index) ^ (1 << bit)) + vector.token.slice(index + 1);
        await assert.rejects(verifier.verify(token, optionsOf(vector)), ReceiptError, `bit ${bit} of byte ${index}`);
      }
    }
  });
}
