// Private-payment tokens, the reader's side of RFC 9497 VOPRF (ristretto255-SHA512): blind a batch
// of fresh token inputs, and finalize the service's evaluation of that batch, which is accepted only
// when its proof verifies against the token key the service publishes for everyone. A service that
// evaluated with any other key (a key of this reader's own, to recognise their tokens when they are
// spent) fails here with `invalid_proof`. No browser APIs but crypto.getRandomValues.
// The group arithmetic is @noble/curves, vendored in ../vendor/noble-voprf.js (see its README).

import { ristretto255, ristretto255_oprf } from '../vendor/noble-voprf.js';

export const SUITE = 'ristretto255-SHA512';
export const ELEMENT_BYTES = 32;
export const SCALAR_BYTES = 32;
export const PROOF_BYTES = 64;
export const OUTPUT_BYTES = 64;
/** The size of a fresh token input from `newTokenInputs`. */
export const TOKEN_INPUT_BYTES = 32;
/** Inputs are length-prefixed with two bytes (RFC 9497 section 1.2). */
export const MAX_INPUT_BYTES = 0xffff;
/** Composite weights number the elements with two bytes. */
export const MAX_BATCH_SIZE = 0x10000;

/** The codes a VoprfError carries: trickle.voprf's codes that a client meets (docs/tokens.md). */
export const VOPRF_ERROR_CODES = Object.freeze(
  /** @type {const} */ (['invalid_element', 'invalid_proof', 'invalid_input', 'invalid_batch']),
);
/** @typedef {typeof VOPRF_ERROR_CODES[number]} VoprfErrorCode */

/**
 * A token between blinding and finalizing. Only `blinded` is sent; `blind` links it to the token
 * and never leaves the extension.
 * @typedef {{ input: Uint8Array, blind: Uint8Array, blinded: Uint8Array }} BlindedToken
 */
/** @typedef {(bytesLength?: number) => Uint8Array} Rng */

export class VoprfError extends Error {
  /**
   * @param {VoprfErrorCode} code
   * @param {string} message
   */
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = 'VoprfError';
    /** @type {VoprfErrorCode} */
    this.code = code;
  }
}

const { voprf } = ristretto255_oprf;
const { Point } = ristretto255;
const ORDER = Point.Fn.ORDER;

/**
 * @param {unknown} value
 * @returns {value is Uint8Array}
 */
function isBytes(value) {
  return value instanceof Uint8Array;
}

/**
 * A group element from the wire: 32 bytes, canonical, not the identity (RFC 9497 section 4.1).
 * @param {unknown} bytes
 * @param {string} what names the element in the error
 * @returns {Uint8Array} a copy
 */
export function checkElement(bytes, what) {
  if (!isBytes(bytes) || bytes.length !== ELEMENT_BYTES) {
    const got = isBytes(bytes) ? `${bytes.length} bytes` : typeof bytes;
    throw new VoprfError('invalid_element', `${what} is ${ELEMENT_BYTES} bytes, got ${got}`);
  }
  let point;
  try {
    point = Point.fromBytes(bytes);
  } catch {
    throw new VoprfError('invalid_element', `${what} is not a canonical ristretto255 encoding`);
  }
  if (point.equals(Point.ZERO)) {
    throw new VoprfError('invalid_element', `${what} is the identity element`);
  }
  return Uint8Array.from(bytes);
}

/**
 * A proof from the wire: c || s, each a canonical little-endian scalar below the group order.
 * @param {unknown} bytes
 * @returns {Uint8Array} a copy
 */
export function checkProof(bytes) {
  if (!isBytes(bytes) || bytes.length !== PROOF_BYTES) {
    const got = isBytes(bytes) ? `${bytes.length} bytes` : typeof bytes;
    throw new VoprfError('invalid_proof', `a proof is ${PROOF_BYTES} bytes, got ${got}`);
  }
  for (const half of [bytes.subarray(0, SCALAR_BYTES), bytes.subarray(SCALAR_BYTES)]) {
    let value = 0n;
    for (let i = SCALAR_BYTES - 1; i >= 0; i--) value = (value << 8n) | BigInt(half[i]);
    // A reduced decoder would accept c + q for c: a second encoding of one proof.
    if (value >= ORDER) {
      throw new VoprfError('invalid_proof', 'the proof holds a scalar not below the group order');
    }
  }
  return Uint8Array.from(bytes);
}

/**
 * @param {number} size
 * @param {number} other
 */
function checkBatch(size, other = size) {
  if (size < 1 || size > MAX_BATCH_SIZE) {
    throw new VoprfError('invalid_batch', `a batch holds 1 to ${MAX_BATCH_SIZE} tokens, not ${size}`);
  }
  if (size !== other) {
    throw new VoprfError('invalid_batch', `${size} blinded tokens but ${other} evaluated elements`);
  }
}

/**
 * Fresh random token inputs.
 * @param {number} count
 * @returns {Uint8Array[]}
 */
export function newTokenInputs(count) {
  checkBatch(count);
  return Array.from({ length: count }, () =>
    crypto.getRandomValues(new Uint8Array(TOKEN_INPUT_BYTES)),
  );
}

/**
 * Blind(input) for each input. `rng` is for tests only: noble draws a blind as
 * (little-endian rng(48) mod (q - 1)) + 1.
 * @param {Uint8Array[]} inputs
 * @param {Rng} [rng]
 * @returns {BlindedToken[]}
 */
export function blindBatch(inputs, rng) {
  checkBatch(inputs.length);
  return inputs.map((input, index) => {
    if (!isBytes(input) || input.length > MAX_INPUT_BYTES) {
      throw new VoprfError('invalid_input', `input ${index} is not 0 to ${MAX_INPUT_BYTES} bytes`);
    }
    const copy = Uint8Array.from(input);
    const { blind, blinded } = rng ? voprf.blind(copy, rng) : voprf.blind(copy);
    return { input: copy, blind, blinded };
  });
}

/**
 * Finalize a batch: check the service's answer, verify its one proof against the published token
 * key, unblind and hash. Throws VoprfError (`invalid_element`, `invalid_proof`, `invalid_batch`);
 * on any error the whole batch must be dropped.
 * @param {Uint8Array} publicKey the token key published for everyone (the epoch's, the currency's)
 * @param {BlindedToken[]} tokens what blindBatch returned, in the order sent
 * @param {Uint8Array[]} evaluated the service's evaluated elements, in the same order
 * @param {Uint8Array} proof the service's proof for the batch
 * @returns {Uint8Array[]} the token outputs, one per token
 */
export function finalizeBatch(publicKey, tokens, evaluated, proof) {
  checkBatch(tokens.length, evaluated.length);
  const key = checkElement(publicKey, 'the public key');
  const items = tokens.map((token, index) => ({
    input: token.input,
    blind: token.blind,
    blinded: token.blinded,
    evaluated: checkElement(evaluated[index], `evaluated element ${index}`),
  }));
  const checkedProof = checkProof(proof);
  try {
    return voprf.finalizeBatch(items, key, checkedProof);
  } catch (error) {
    // Everything else was checked above: what noble can still refuse is the proof itself.
    if (error instanceof Error && error.message === 'proof verification failed') {
      throw new VoprfError('invalid_proof', 'the proof does not verify against the public key');
    }
    throw error;
  }
}
