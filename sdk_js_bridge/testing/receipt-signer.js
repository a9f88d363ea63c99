/**
 * Test-only receipt issuer for the suites in ../test: a throwaway Ed25519 key (node:crypto) that
 * signs any header and payload, including malformed ones. Not part of the SDK's public API.
 */

import { generateKeyPairSync, sign } from 'node:crypto';

import { encodeBase64url } from '../base64url.js';

export const CONTEXT = Object.freeze({
  issuer: 'https://trickle.test',
  audience: 'https://blog.example',
  payees: Object.freeze(['https://trickle.test/p/alice', 'https://trickle.test/p/bob']),
  now: 1795000100,
});

/**
 * A well-formed claims object valid in `CONTEXT`; `overrides` replace members, `undefined` removes one.
 * @param {Record<string, unknown>} [overrides]
 * @returns {Record<string, unknown>}
 */
export function claims(overrides = {}) {
  /** @type {Record<string, unknown>} */
  const base = {
    iss: CONTEXT.issuer, aud: CONTEXT.audience, pay: CONTEXT.payees[0],
    sid: 'p3Kq9vX2c0S7bW1mN8aYzA', seq: 3, amt: '333333', tot: '1000000', cur: 'USD', scale: 9,
    iat: 1795000000, exp: 1795000300, jti: 'rK2m0qv9X1Q7s8pA',
  };
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete base[name];
    else base[name] = value;
  }
  return base;
}

/**
 * @param {string} text
 * @returns {string}
 */
export function encodeText(text) {
  return encodeBase64url(new TextEncoder().encode(text));
}

/**
 * @typedef {object} TestIssuer
 * @property {string} kid
 * @property {{keys: Record<string, string>[]}} jwks  the public JWK Set
 * @property {import('node:crypto').KeyObject} privateKey
 * @property {(payload: object | string, header?: object | string) => string} sign
 *   Sign a payload (an object, or raw JSON text used as is) under a header (default: the valid
 *   one for this key; an object or raw JSON text).
 */

/**
 * @param {string} [kid]
 * @returns {TestIssuer}
 */
export function createTestIssuer(kid = 'test-key-1') {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = /** @type {Record<string, string>} */ (publicKey.export({ format: 'jwk' }));
  const defaultHeader = { alg: 'EdDSA', kid, typ: 'trickle-receipt+jwt' };
  return {
    kid,
    jwks: { keys: [{ kty: 'OKP', crv: 'Ed25519', x: jwk.x, kid, alg: 'EdDSA', use: 'sig' }] },
    privateKey,
    sign(payload, header = defaultHeader) {
      const asText = (/** @type {object | string} */ part) => (typeof part === 'string' ? part : JSON.stringify(part));
      const signingInput = `${encodeText(asText(header))}.${encodeText(asText(payload))}`;
      return `${signingInput}.${encodeBase64url(sign(null, Buffer.from(signingInput), privateKey))}`;
    },
  };
}
