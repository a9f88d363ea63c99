import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CreditTracker, KeySet, createVerifier } from '../index.js';
import { CONTEXT, claims, createTestIssuer } from '../testing/receipt-signer.js';

const issuer = createTestIssuer();
const verifier = createVerifier({ ...CONTEXT, keys: await KeySet.fromJwks(issuer.jwks), clock: () => CONTEXT.now });

/**
 * @param {string} sid
 * @param {number} seq
 * @param {number} tot
 */
function receipt(sid, seq, tot) {
  return verifier.verify(issuer.sign(claims({ sid, seq, amt: '100', tot: String(tot), jti: `j${seq}` })));
}

test('credits the increase of tot per sid: the docs/receipts.md §4 example', async () => {
  const tracker = new CreditTracker();
  const steps = [[1, 100, 100n], [2, 200, 100n], [2, 200, 0n], [4, 400, 200n], [3, 300, 0n]];
  let total = 0n;
  for (const [seq, tot, credited] of steps) {
    const amount = await tracker.credit(await receipt('S', Number(seq), Number(tot)));
    assert.equal(amount, credited, `seq ${seq}`);
    total += amount;
  }
  assert.equal(total, 400n);
});

test('streams are independent', async () => {
  const tracker = new CreditTracker();
  assert.equal(await tracker.credit(await receipt('A', 1, 100)), 100n);
  assert.equal(await tracker.credit(await receipt('B', 1, 100)), 100n);
  assert.equal(await tracker.credit(await receipt('A', 2, 250)), 150n);
});

test('takes a pluggable, possibly asynchronous store', async () => {
  /** @type {Map<string, bigint>} */
  const rows = new Map();
  const store = {
    /** @param {string} sid @param {bigint} tot */
    async advance(sid, tot) {
      const previous = rows.get(sid) ?? 0n;
      if (tot > previous) rows.set(sid, tot);
      return previous;
    },
  };
  const tracker = new CreditTracker(store);
  assert.equal(await tracker.credit(await receipt('S', 2, 200)), 200n);
  assert.equal(await tracker.credit(await receipt('S', 1, 100)), 0n);
  assert.equal(rows.get('S'), 200n);
});

test('refuses objects that did not come from verify', async () => {
  const tracker = new CreditTracker();
  const forged = { ...(await receipt('S', 1, 100)) };
  await assert.rejects(tracker.credit(/** @type {any} */ (forged)), TypeError);
});
