// Receipt verification throughput in JavaScript: raw WebCrypto Ed25519 verify vs. the full
// verifier (sdk_js_bridge) on the first valid shared vector (or a locally signed receipt when
// tests/vectors/receipts.json does not exist yet). Sequential awaits, warm-up, then ~2 s each.
// Usage: node bench/verify_js.mjs [--json]
// Output: one `name: value unit` line per figure, or one JSON object with --json.

import { existsSync } from 'node:fs';

import { decodeBase64url } from '../sdk_js_bridge/base64url.js';
import { KeySet, createVerifier } from '../sdk_js_bridge/index.js';
import { CONTEXT, claims, createTestIssuer } from '../sdk_js_bridge/testing/receipt-signer.js';
import { VECTORS_URL, loadVectors } from '../sdk_js_bridge/testing/vectors.js';

const WARM_UP_MS = 300;
const MEASURE_MS = 2000;

/** @returns {Promise<{source: string, token: string, jwks: unknown, options: import('../sdk_js_bridge/index.js').VerifierOptions, verifyOptions: import('../sdk_js_bridge/index.js').VerifyOptions}>} */
async function subject() {
  if (existsSync(VECTORS_URL)) {
    const vectors = loadVectors();
    const [vector] = vectors.valid;
    const { issuer, audience, payees, now, leeway_s: leewayS } = vectors.verifier;
    return {
      source: `tests/vectors/receipts.json#${vector.name}`,
      token: vector.token,
      jwks: vectors.jwks,
      options: { issuer, audience, payees, leewayS, keys: await KeySet.fromJwks(vectors.jwks) },
      verifyOptions: { binding: vector.binding, now: vector.now ?? now },
    };
  }
  const issuer = createTestIssuer();
  return {
    source: 'generated (tests/vectors/receipts.json missing)',
    token: issuer.sign(claims()),
    jwks: issuer.jwks,
    options: { ...CONTEXT, keys: await KeySet.fromJwks(issuer.jwks) },
    verifyOptions: { now: CONTEXT.now },
  };
}

/**
 * Operations per second of `operation`, awaited one after another.
 * @param {() => Promise<unknown>} operation
 */
async function opsPerSecond(operation) {
  for (let start = performance.now(); performance.now() - start < WARM_UP_MS;) await operation();
  let count = 0;
  const start = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < MEASURE_MS) {
    for (let i = 0; i < 100; i += 1) await operation();
    count += 100;
    elapsedMs = performance.now() - start;
  }
  return Math.round((count * 1000) / elapsedMs);
}

const { source, token, jwks, options, verifyOptions } = await subject();
const [header, payload, signature] = token.split('.');
const kid = JSON.parse(new TextDecoder().decode(decodeBase64url(header))).kid;
const jwk = /** @type {{keys: {kid: string, x: string}[]}} */ (jwks).keys.find((key) => key.kid === kid);
if (jwk === undefined) throw new Error(`bench: kid ${kid} not in the JWK Set`);
const rawKey = await crypto.subtle.importKey('raw', decodeBase64url(jwk.x), { name: 'Ed25519' }, false, ['verify']);
const signingInput = new TextEncoder().encode(`${header}.${payload}`);
const signatureBytes = decodeBase64url(signature);
const verifier = createVerifier(options);

const webcrypto = await opsPerSecond(async () => {
  if (!(await crypto.subtle.verify({ name: 'Ed25519' }, rawKey, signatureBytes, signingInput))) throw new Error('bench: bad signature');
});
const full = await opsPerSecond(() => verifier.verify(token, verifyOptions));

const result = {
  webcrypto_ed25519_verify: webcrypto,
  trickle_verify: full,
  unit: 'ops/s',
  token_bytes: token.length,
  node: process.version,
  source,
};
if (process.argv.includes('--json')) {
  console.log(JSON.stringify(result));
} else {
  console.log(`webcrypto_ed25519_verify: ${webcrypto} ops/s`);
  console.log(`trickle_verify: ${full} ops/s`);
  console.log(`token_bytes: ${token.length} bytes`);
}
