/**
 * A site's receipt verifier (sdk_js_bridge) in a process of its own, for
 * test_key_rotation_sites.py. It fetches the issuer's key set at start (and later only as its
 * refresh interval allows, like a site honouring the set's Cache-Control max-age), prints
 * `ready`, then verifies each token it reads from stdin, at once and in order, printing one JSON
 * line per token: `{"ok": true, "kid": …}` or `{"ok": false, "kid": …, "code": …}`.
 *
 * Usage: node rotation_site.mjs JWKS_URL ISSUER AUDIENCE PAYEE REFRESH_INTERVAL_MS
 */

import { createInterface } from 'node:readline';
import { KeySet, ReceiptError, createVerifier } from '../../sdk_js_bridge/index.js';

const [jwksUrl, issuer, audience, payee, refreshIntervalMs] = process.argv.slice(2);
const keys = await KeySet.fromUrl(jwksUrl, { refreshIntervalMs: Number(refreshIntervalMs) });
const verifier = createVerifier({ issuer, audience, payees: [payee], keys });
process.stdout.write('ready\n');

/** @param {Record<string, unknown>} result */
function report(result) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

for await (const token of createInterface({ input: process.stdin })) {
  const header = JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
  try {
    await verifier.verify(token);
    report({ ok: true, kid: header.kid });
  } catch (error) {
    if (!(error instanceof ReceiptError)) throw error;
    report({ ok: false, kid: header.kid, code: error.code });
  }
}
