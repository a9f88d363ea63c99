// extension/shared/voprf.js (and the vendored @noble/curves under it) against RFC 9497 Appendix
// A.1.2 and the shared refusal vectors: the same files trickle.voprf's Python tests load.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  OUTPUT_BYTES,
  SUITE,
  TOKEN_INPUT_BYTES,
  VOPRF_ERROR_CODES,
  VoprfError,
  blindBatch,
  checkElement,
  checkProof,
  finalizeBatch,
  newTokenInputs,
} from '../shared/voprf.js';
import { ristretto255_oprf } from '../vendor/noble-voprf.js';

const VECTORS_DIR = new URL('../../tests/vectors/', import.meta.url);
const RFC = JSON.parse(
  readFileSync(new URL('rfc9497-voprf-ristretto255-sha512.json', VECTORS_DIR), 'utf8'),
);
const REFUSALS = JSON.parse(readFileSync(new URL('voprf-refusals.json', VECTORS_DIR), 'utf8'));
const { voprf } = ristretto255_oprf;
// Server-side Evaluate: noble 2.4.0 has voprf.evaluate at runtime, its declarations omit it.
/** @type {(secretKey: Uint8Array, input: Uint8Array) => Uint8Array} */
const evaluate = /** @type {any} */ (voprf).evaluate;

/** @param {string} text */
const bytes = (text) => new Uint8Array(Buffer.from(text, 'hex'));
/** @param {Uint8Array} data */
const hex = (data) => Buffer.from(data).toString('hex');

/**
 * An rng that makes noble draw the given scalars in order: noble takes (LE(rng(48)) mod (q-1)) + 1,
 * so it is handed LE(scalar - 1) in 48 bytes.
 * @param {string[]} scalars little-endian hex
 * @returns {(length?: number) => Uint8Array}
 */
function rngFor(scalars) {
  const queue = [...scalars];
  return (length = 48) => {
    const next = queue.shift();
    assert.ok(next !== undefined, 'the test rng ran out of scalars');
    let value = BigInt('0x' + hex(bytes(next).reverse())) - 1n;
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++, value >>= 8n) out[i] = Number(value & 0xffn);
    return out;
  };
}

/**
 * @param {string} code
 * @param {() => unknown} call
 */
function assertCode(code, call) {
  assert.throws(call, (error) => {
    assert.ok(error instanceof VoprfError, `expected a VoprfError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

const rfcKey = () => voprf.deriveKeyPair(bytes(RFC.Seed), bytes(RFC.KeyInfo));
/** @param {string} name */
const rfcVector = (name) => RFC.vectors.find((/** @type {{name: string}} */ v) => v.name === name);

test('the suite is the one the vectors are for', () => {
  assert.equal(SUITE, RFC.suite);
  assert.equal(ristretto255_oprf.name, SUITE);
  assert.deepEqual([...VOPRF_ERROR_CODES].sort(), [
    'invalid_batch',
    'invalid_element',
    'invalid_input',
    'invalid_proof',
  ]);
});

test('docs/tokens.md documents every code the client raises', () => {
  const docs = readFileSync(new URL('../../docs/tokens.md', import.meta.url), 'utf8');
  const documented = [...docs.matchAll(/^\| `([a-z_]+)` \|/gm)].map((m) => m[1]);
  for (const code of VOPRF_ERROR_CODES) assert.ok(documented.includes(code), code);
});

test('DeriveKeyPair matches the RFC', () => {
  const { secretKey, publicKey } = rfcKey();
  assert.equal(hex(secretKey), RFC.skSm);
  assert.equal(hex(publicKey), RFC.pkSm);
});

for (const vector of RFC.vectors) {
  test(`RFC 9497 A.1.2: ${vector.name}`, () => {
    const inputs = vector.Input.map(bytes);
    const tokens = blindBatch(inputs, rngFor(vector.Blind));
    assert.deepEqual(tokens.map((t) => hex(t.blinded)), vector.BlindedElement);
    assert.deepEqual(tokens.map((t) => hex(t.blind)), vector.Blind);

    // The server side, by the same vendored library, reproduces the RFC's evaluation and proof.
    const { secretKey, publicKey } = rfcKey();
    const server = voprf.blindEvaluateBatch(
      secretKey,
      publicKey,
      tokens.map((t) => t.blinded),
      rngFor([vector.ProofRandomScalar]),
    );
    assert.deepEqual(server.evaluated.map(hex), vector.EvaluationElement);
    assert.equal(hex(server.proof), vector.Proof);

    // The client finalizes from the RFC's wire values alone.
    const outputs = finalizeBatch(
      bytes(RFC.pkSm),
      tokens,
      vector.EvaluationElement.map(bytes),
      bytes(vector.Proof),
    );
    assert.deepEqual(outputs.map(hex), vector.Output);
    assert.deepEqual(
      inputs.map((/** @type {Uint8Array} */ input) => hex(evaluate(secretKey, input))),
      vector.Output,
    );
  });
}

for (const refusal of REFUSALS.finalize) {
  test(`finalize refuses: ${refusal.name} (${refusal.code})`, () => {
    const base = rfcVector(REFUSALS.base);
    const tokens = blindBatch(base.Input.map(bytes), rngFor(base.Blind));
    assertCode(refusal.code, () =>
      finalizeBatch(
        bytes(refusal.pkSm),
        tokens,
        refusal.EvaluationElement.map(bytes),
        bytes(refusal.Proof),
      ),
    );
  });
}

for (const refusal of REFUSALS.elements) {
  test(`an element from the wire is refused: ${refusal.name}`, () => {
    assertCode(refusal.code, () => checkElement(bytes(refusal.hex), 'the element'));
  });
}

test('a fresh batch round trip: outputs are what the server recomputes, tokens differ', () => {
  const { secretKey, publicKey } = voprf.generateKeyPair();
  const inputs = newTokenInputs(5);
  assert.ok(inputs.every((input) => input.length === TOKEN_INPUT_BYTES));
  const tokens = blindBatch(inputs);
  const { evaluated, proof } = voprf.blindEvaluateBatch(
    secretKey,
    publicKey,
    tokens.map((t) => t.blinded),
  );
  const outputs = finalizeBatch(publicKey, tokens, evaluated, proof);
  assert.equal(outputs.length, 5);
  assert.ok(outputs.every((output) => output.length === OUTPUT_BYTES));
  assert.deepEqual(outputs.map(hex), inputs.map((input) => hex(evaluate(secretKey, input))));
  assert.equal(new Set(outputs.map(hex)).size, 5);
});

test('a service that evaluates with a key of its own for this reader is detected', () => {
  const published = voprf.generateKeyPair();
  const tagging = voprf.generateKeyPair();
  const tokens = blindBatch(newTokenInputs(3));
  const answer = voprf.blindEvaluateBatch(
    tagging.secretKey,
    tagging.publicKey,
    tokens.map((t) => t.blinded),
  );
  // Honest for the key it used, refused against the one published for everyone.
  finalizeBatch(tagging.publicKey, tokens, answer.evaluated, answer.proof);
  assertCode('invalid_proof', () =>
    finalizeBatch(published.publicKey, tokens, answer.evaluated, answer.proof),
  );
});

test('the input is copied, not kept by reference', () => {
  const input = new Uint8Array(32).fill(7);
  const [token] = blindBatch([input]);
  input.fill(0);
  assert.equal(hex(token.input), '07'.repeat(32));
});

test('batch shapes and input sizes', () => {
  assertCode('invalid_batch', () => blindBatch([]));
  assertCode('invalid_batch', () => newTokenInputs(0));
  assertCode('invalid_input', () => blindBatch([new Uint8Array(0x10000)]));
  assert.equal(blindBatch([new Uint8Array(0xffff)]).length, 1);
  assertCode('invalid_input', () => blindBatch([/** @type {any} */ ('not bytes')]));
  assertCode('invalid_batch', () => finalizeBatch(bytes(RFC.pkSm), [], [], new Uint8Array(64)));
});

test('proof encodings', () => {
  assertCode('invalid_proof', () => checkProof(new Uint8Array(63)));
  assertCode('invalid_proof', () => checkProof(/** @type {any} */ (null)));
  assertCode('invalid_proof', () => checkProof(new Uint8Array(64).fill(0xff)));
  assert.equal(checkProof(new Uint8Array(64)).length, 64);
});
