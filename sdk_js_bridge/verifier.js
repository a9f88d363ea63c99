/**
 * The receipt verifier: checks a Trickle receipt (a compact EdDSA JWS) against the rules of
 * docs/receipts.md §3, in their order, and returns the authenticated claims or rejects with
 * `ReceiptError`. Runs wherever WebCrypto has Ed25519 (Node >= 20, current browsers).
 */

import { decodeBase64url } from './base64url.js';
import { ReceiptError } from './errors.js';
import { KID_PATTERN, KeySet } from './keys.js';
import { parseStrictJson } from './strict-json.js';

/** @typedef {import('./strict-json.js').JsonObject} JsonObject */
/** @typedef {import('./errors.js').ReceiptErrorCode} ReceiptErrorCode */

/**
 * A verified receipt (frozen). Money is `bigint` minor units, never a `number`.
 * @typedef {Readonly<{
 *   iss: string, aud: string, pay: string, sid: string, seq: number,
 *   amt: bigint, tot: bigint, cur: string, scale: number, iat: number, exp: number, jti: string,
 *   bnd: string | null, otp: boolean, ord: string | null, oneTime: boolean, orderRef: string | null,
 *   token: string,
 * }>} Receipt
 *   `bnd` and `ord` are null and `otp` false when the receipt does not carry them. `oneTime` and
 *   `orderRef` are `otp` and `ord` under the names of the Python verifier's `one_time` and
 *   `order_ref`: a site selling an item checks them (docs/receipts.md §4 "Selling an item").
 */

/**
 * @typedef {object} VerifierOptions
 * @property {string} issuer  the origin of the service the site trusts; `iss` must equal it, normalised (below)
 * @property {string} audience  the site's own origin; `aud` must equal it, normalised: `https://Blog.Example:443/` is
 *   `https://blog.example`, and anything that is not an http(s) origin throws `TypeError` (docs/receipts.md §3.1)
 * @property {Iterable<string>} payees  the payment pointers the site accepts; `pay` must be one
 * @property {KeySet} keys  the issuer's public keys
 * @property {number} [leewayS]  allowed clock skew in whole seconds; default 60
 * @property {() => number} [clock]  current time in seconds since the epoch; default `Date.now() / 1000`
 */

/**
 * @typedef {object} VerifyOptions
 * @property {string | null} [binding]  the binding value the site gave the page; when set, `bnd` must equal it
 * @property {number} [now]  verify at this time (seconds) instead of `clock()`
 */

/** @typedef {{verify(token: unknown, options?: VerifyOptions): Promise<Receipt>}} Verifier */

export const MAX_TOKEN_BYTES = 4096;
export const RECEIPT_TYPE = 'trickle-receipt+jwt';
const REQUIRED_CLAIMS = /** @type {const} */ (['iss', 'aud', 'pay', 'sid', 'seq', 'amt', 'tot', 'cur', 'scale', 'iat', 'exp', 'jti']);
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const CURRENCY_PATTERN = /^[A-Z0-9]{3,12}$/;
const BINDING_PATTERN = /^[\x20-\x7e]{1,256}$/;
const ORDER_REF_PATTERN = /^[\x20-\x7e]{1,128}$/;
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)$/;
// Integers must survive a JavaScript `number` unchanged (the Python verifier applies the same bounds).
const MAX_SAFE_INTEGER = BigInt(Number.MAX_SAFE_INTEGER);
const MAX_AMOUNT_EXCLUSIVE = 2n ** 63n;
const MAX_SCALE = 18n;
const MAX_ORIGIN_LENGTH = 300;
const DEFAULT_PORTS = /** @type {Record<string, number>} */ ({ http: 80, https: 443 });
// Tested on ASCII text only (checked first), so case folding cannot let a Kelvin sign pass as "k".
// An empty query or fragment ("https://blog.example/?") is no query or fragment.
const ORIGIN_PATTERN = /^(https?):\/\/(\[[0-9a-f]*:[0-9a-f:.]*\]|[a-z0-9_.-]+)(?::([0-9]*))?\/?\??#?$/i;
const LABEL_PATTERN = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
const IPV4_PART_PATTERN = /^(?:0|[1-9][0-9]{0,2})$/;
const IPV6_GROUP_PATTERN = /^[0-9a-f]{1,4}$/;

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const ascii = new TextEncoder();

/** Receipts made by a verifier, so a credit tracker can refuse look-alike objects. */
const verifiedReceipts = new WeakSet();

/**
 * @param {unknown} value
 * @returns {value is Receipt}
 */
export function isVerifiedReceipt(value) {
  return typeof value === 'object' && value !== null && verifiedReceipts.has(value);
}

/**
 * Create a verifier for one site: the issuer it trusts, its origin, its payees and the issuer's keys.
 * @param {VerifierOptions} options
 * @returns {Verifier}
 */
export function createVerifier({ issuer: issuerOption, audience: audienceOption, payees, keys, leewayS = 60, clock = () => Date.now() / 1000 }) {
  requireOption(typeof issuerOption === 'string' && issuerOption !== '', 'issuer', 'a non-empty string', issuerOption);
  requireOption(typeof audienceOption === 'string' && audienceOption !== '', 'audience', 'a non-empty string (the site origin)', audienceOption);
  const issuer = normalizeOrigin('issuer', issuerOption);
  const audience = normalizeOrigin('audience', audienceOption);
  requireOption(typeof payees !== 'string', 'payees', 'a list of payment pointer URLs, not one string', payees);
  const payeeSet = new Set(payees);
  requireOption(payeeSet.size > 0 && [...payeeSet].every((p) => typeof p === 'string' && p !== ''), 'payees', 'a non-empty list of strings', payees);
  requireOption(keys instanceof KeySet, 'keys', 'a KeySet', keys);
  requireOption(Number.isSafeInteger(leewayS) && leewayS >= 0, 'leewayS', 'a non-negative integer', leewayS);
  requireOption(typeof clock === 'function', 'clock', 'a function returning seconds', clock);
  const leeway = BigInt(leewayS);

  return Object.freeze({
    /**
     * @param {unknown} token
     * @param {VerifyOptions} [options]
     * @returns {Promise<Receipt>}
     */
    async verify(token, { binding = null, now } = {}) {
      requireOption(binding === null || typeof binding === 'string', 'binding', 'a string or null', binding);
      const at = now ?? clock();
      requireOption(Number.isFinite(at), 'now', 'a finite number of seconds', at);
      const { header, signingInput, signature, encodedPayload } = splitToken(token);
      const key = await authenticateHeader(header, keys);
      await checkSignature(key, signature, signingInput);
      if (header.typ !== RECEIPT_TYPE) {
        fail('wrong_type', `expected header typ ${JSON.stringify(RECEIPT_TYPE)}, got ${describe(header.typ)}`);
      }
      const claims = parseJsonObject(encodedPayload, 'malformed_payload', 'payload');
      const shaped = checkClaimShapes(claims);
      checkContext(shaped, { issuer, audience, payees: payeeSet, leeway, at });
      const { amt, tot } = checkAmounts(claims);
      if (binding !== null && shaped.bnd !== binding) {
        fail('binding_mismatch', `expected bnd ${JSON.stringify(binding)}, got ${describe(shaped.bnd ?? undefined)}`);
      }
      const receipt = Object.freeze({
        iss: shaped.iss, aud: shaped.aud, pay: shaped.pay, sid: shaped.sid, seq: Number(shaped.seq),
        amt, tot, cur: shaped.cur, scale: Number(shaped.scale), iat: Number(shaped.iat), exp: Number(shaped.exp),
        jti: shaped.jti, bnd: shaped.bnd, otp: shaped.otp, ord: shaped.ord,
        oneTime: shaped.otp, orderRef: shaped.ord, token: /** @type {string} */ (token),
      });
      verifiedReceipts.add(receipt);
      return receipt;
    },
  });
}

/**
 * Rules 1–3: size, compact form, canonical base64url, header JSON.
 * @param {unknown} token
 */
function splitToken(token) {
  if (typeof token !== 'string') fail('malformed_jws', `expected the token as a string, got ${describeType(token)}`);
  // UTF-8 never takes fewer bytes than UTF-16 code units, so a long string is rejected unencoded.
  if (token.length > MAX_TOKEN_BYTES) fail('token_too_large', `expected at most ${MAX_TOKEN_BYTES} bytes, got ${token.length} characters`);
  const bytes = ascii.encode(token).length;
  if (bytes > MAX_TOKEN_BYTES) fail('token_too_large', `expected at most ${MAX_TOKEN_BYTES} bytes, got ${bytes} bytes`);
  const parts = token.split('.');
  if (parts.length !== 3) fail('malformed_jws', `expected 3 dot-separated parts, got ${parts.length}`);
  const decoded = parts.map((part, index) => {
    const name = ['header', 'payload', 'signature'][index];
    if (part === '') fail('malformed_jws', `expected a non-empty ${name} part, got an empty one`);
    try {
      return decodeBase64url(part);
    } catch (error) {
      return fail('malformed_jws', `${name} part: ${/** @type {Error} */ (error).message}`, error);
    }
  });
  if (decoded[2].length !== 64) fail('malformed_jws', `expected a 64-byte Ed25519 signature, got ${decoded[2].length} bytes`);
  const header = parseJsonObject(decoded[0], 'malformed_header', 'header');
  if (Object.hasOwn(header, 'crit')) fail('malformed_header', 'expected no crit header member (this profile has no critical extensions), got one');
  return { header, signingInput: ascii.encode(`${parts[0]}.${parts[1]}`), signature: decoded[2], encodedPayload: decoded[1] };
}

/**
 * Rules 4–6: pinned algorithm, kid shape, known kid.
 * @param {JsonObject} header
 * @param {KeySet} keys
 * @returns {Promise<CryptoKey>}
 */
async function authenticateHeader(header, keys) {
  if (header.alg !== 'EdDSA') fail('unsupported_algorithm', `expected alg "EdDSA", got ${describe(header.alg)}`);
  const kid = header.kid;
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) fail('invalid_kid', `expected a kid matching ${KID_PATTERN}, got ${describe(kid)}`);
  const key = await keys.lookup(kid);
  if (key === undefined) fail('unknown_kid', `expected a kid of the issuer's key set, got ${JSON.stringify(kid)}`);
  return key;
}

/**
 * Rule 7.
 * @param {CryptoKey} key
 * @param {Uint8Array<ArrayBuffer>} signature
 * @param {Uint8Array<ArrayBuffer>} signingInput
 */
async function checkSignature(key, signature, signingInput) {
  let valid;
  try {
    valid = await globalThis.crypto.subtle.verify({ name: 'Ed25519' }, key, signature, signingInput);
  } catch (error) {
    fail('bad_signature', 'expected a valid Ed25519 signature, got one WebCrypto could not check', error);
  }
  if (!valid) fail('bad_signature', 'expected a valid Ed25519 signature for the header and payload, got an invalid one');
}

/**
 * UTF-8 JSON object without duplicate members (rules 3 and 9).
 * @param {Uint8Array} bytes
 * @param {ReceiptErrorCode} code
 * @param {string} name
 * @returns {JsonObject}
 */
function parseJsonObject(bytes, code, name) {
  let value;
  try {
    value = parseStrictJson(utf8.decode(bytes));
  } catch (error) {
    const reason = error instanceof SyntaxError ? error.message : 'bytes that are not UTF-8';
    return fail(code, `expected the ${name} as a UTF-8 JSON object without duplicate members, got ${reason}`, error);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(code, `expected the ${name} as a JSON object, got ${describeType(value)}`);
  }
  return value;
}

/**
 * Rules 10–11: every required claim present, every claim but amt/tot well-shaped (the optional
 * `bnd`, `ord` and `otp` when present), exp > iat, and a one-time receipt has seq 1 and amt == tot.
 * @param {JsonObject} claims
 */
function checkClaimShapes(claims) {
  for (const name of REQUIRED_CLAIMS) {
    if (!Object.hasOwn(claims, name)) fail('missing_claim', `expected claim ${name}, got none`);
  }
  const shaped = {
    iss: stringClaim(claims, 'iss'),
    aud: stringClaim(claims, 'aud'),
    pay: stringClaim(claims, 'pay'),
    sid: stringClaim(claims, 'sid', ID_PATTERN),
    seq: integerClaim(claims, 'seq', 1n, MAX_SAFE_INTEGER),
    cur: stringClaim(claims, 'cur', CURRENCY_PATTERN),
    scale: integerClaim(claims, 'scale', 0n, MAX_SCALE),
    iat: integerClaim(claims, 'iat', 0n, MAX_SAFE_INTEGER),
    exp: integerClaim(claims, 'exp', 0n, MAX_SAFE_INTEGER),
    jti: stringClaim(claims, 'jti', ID_PATTERN),
    bnd: Object.hasOwn(claims, 'bnd') ? stringClaim(claims, 'bnd', BINDING_PATTERN) : null,
    ord: Object.hasOwn(claims, 'ord') ? stringClaim(claims, 'ord', ORDER_REF_PATTERN) : null,
    otp: Object.hasOwn(claims, 'otp') ? booleanClaim(claims, 'otp') : false,
  };
  if (shaped.exp <= shaped.iat) fail('invalid_claim', `expected exp > iat, got exp ${shaped.exp} and iat ${shaped.iat}`);
  if (shaped.otp && (shaped.seq !== 1n || !sameJsonValue(claims.amt, claims.tot))) {
    fail('invalid_claim', `expected seq 1 and amt == tot in a one-time receipt (otp true), got seq ${shaped.seq}, amt ${describe(claims.amt)}, tot ${describe(claims.tot)}`);
  }
  return shaped;
}

/**
 * JSON equality of two scalar claim values as `===` on `JSON.parse` output sees it (1 equals 1.0),
 * so a one-time receipt's amt == tot is judged the same way here and in the Python verifier, even
 * before rule 17 has checked that the amounts are strings.
 * @param {import('./strict-json.js').JsonValue} left
 * @param {import('./strict-json.js').JsonValue} right
 * @returns {boolean}
 */
function sameJsonValue(left, right) {
  const numeric = (/** @type {unknown} */ value) => typeof value === 'bigint' || typeof value === 'number';
  if (numeric(left) && numeric(right)) return left == right; // loose on purpose: 1n == 1.0 is exact
  return (typeof left === 'string' || typeof left === 'boolean' || left === null) && left === right;
}

/**
 * Rules 12–16: issuer, audience, payee, expiry, issue time. Times compare exactly (bigint vs number).
 * @param {{iss: string, aud: string, pay: string, iat: bigint, exp: bigint}} claims
 * @param {{issuer: string, audience: string, payees: Set<string>, leeway: bigint, at: number}} context
 */
function checkContext(claims, { issuer, audience, payees, leeway, at }) {
  if (claims.iss !== issuer) fail('wrong_issuer', `expected iss ${JSON.stringify(issuer)}, got ${JSON.stringify(claims.iss)}`);
  if (claims.aud !== audience) fail('wrong_audience', `expected aud ${JSON.stringify(audience)}, got ${JSON.stringify(claims.aud)}`);
  if (!payees.has(claims.pay)) fail('wrong_payee', `expected pay to be one of ${JSON.stringify([...payees])}, got ${JSON.stringify(claims.pay)}`);
  if (!(at <= claims.exp + leeway)) fail('expired', `expected now <= exp + leeway (${claims.exp} + ${leeway}), got now ${at}`);
  if (!(claims.iat - leeway <= at)) {
    fail('not_yet_valid', `expected iat <= now + leeway (${at} + ${leeway}), got iat ${claims.iat}`);
  }
}

/**
 * Rules 17–18: canonical decimal amounts below 2^63, tot >= amt.
 * @param {JsonObject} claims
 */
function checkAmounts(claims) {
  const amt = amountClaim(claims, 'amt');
  const tot = amountClaim(claims, 'tot');
  if (tot < amt) fail('total_below_amount', `expected tot >= amt, got tot ${tot} and amt ${amt}`);
  return { amt, tot };
}

/**
 * @param {JsonObject} claims
 * @param {string} name
 * @param {RegExp} [pattern]
 * @returns {string}
 */
function stringClaim(claims, name, pattern) {
  const value = claims[name];
  if (typeof value !== 'string') fail('invalid_claim', `expected claim ${name} as a string, got ${describeType(value)}`);
  if (pattern !== undefined && !pattern.test(value)) fail('invalid_claim', `expected claim ${name} to match ${pattern}, got ${JSON.stringify(value)}`);
  return value;
}

/**
 * @param {JsonObject} claims
 * @param {string} name
 * @param {bigint} [min]
 * @param {bigint} [max]
 * @returns {bigint}
 */
function integerClaim(claims, name, min, max) {
  const value = claims[name];
  if (typeof value !== 'bigint') fail('invalid_claim', `expected claim ${name} as a JSON integer, got ${describeType(value)}`);
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) {
    fail('invalid_claim', `expected claim ${name} in ${min ?? '-inf'}..${max ?? 'inf'}, got ${value}`);
  }
  return value;
}

/**
 * @param {JsonObject} claims
 * @param {string} name
 * @returns {boolean}
 */
function booleanClaim(claims, name) {
  const value = claims[name];
  if (typeof value !== 'boolean') fail('invalid_claim', `expected claim ${name} as true or false, got ${describeType(value)}`);
  return value;
}

/**
 * @param {JsonObject} claims
 * @param {'amt' | 'tot'} name
 * @returns {bigint}
 */
function amountClaim(claims, name) {
  const value = claims[name];
  if (typeof value !== 'string' || !AMOUNT_PATTERN.test(value)) {
    fail('invalid_amount', `expected ${name} as a canonical decimal string like "1000", got ${typeof value === 'string' ? JSON.stringify(value) : describeType(value)}`);
  }
  const amount = BigInt(value);
  if (amount >= MAX_AMOUNT_EXCLUSIVE) fail('invalid_amount', `expected ${name} below 2^63, got ${value}`);
  return amount;
}

/**
 * The origin rule of docs/receipts.md §3.1, as the service applies it to the origins it signs:
 * `HTTPS://Blog.Example:443/` is `https://blog.example`. Anything that is not an http(s) origin
 * (a path, a query, credentials, a bad host or port, non-ASCII) is a configuration error.
 * @param {string} name  the option, for the message
 * @param {string} text
 * @returns {string}
 */
export function normalizeOrigin(name, text) {
  const match = text.length <= MAX_ORIGIN_LENGTH && /^[\x00-\x7f]*$/.test(text) ? ORIGIN_PATTERN.exec(text) : null;
  requireOption(match !== null, name, 'an http(s) origin such as https://blog.example (scheme, host, optional port; no path, query or credentials)', text);
  const scheme = match[1].toLowerCase();
  const host = match[2].toLowerCase();
  requireOption(isValidHost(host), name, 'an http(s) origin whose host is a DNS name, an IPv4 address or a [bracketed] IPv6 address', text);
  if (match[3] === undefined || match[3] === '') return `${scheme}://${host}`; // an empty ":" is dropped, as browsers do
  const port = Number(match[3]);
  requireOption(port >= 1 && port <= 65535, name, 'an http(s) origin with a port in 1..65535', text);
  return port === DEFAULT_PORTS[scheme] ? `${scheme}://${host}` : `${scheme}://${host}:${port}`;
}

/**
 * @param {string} host  lower case, of the origin pattern's characters
 * @returns {boolean}
 */
function isValidHost(host) {
  if (host.startsWith('[')) return isValidIpv6(host.slice(1, -1));
  const labels = host.split('.');
  if (labels.every((label) => /^[0-9]+$/.test(label))) return isValidIpv4(host); // browsers read all-numeric hosts as IPv4
  return host.length <= 253 && labels.every((label) => LABEL_PATTERN.test(label));
}

/**
 * @param {string} text
 * @returns {boolean}
 */
function isValidIpv4(text) {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((part) => IPV4_PART_PATTERN.test(part) && Number(part) <= 255);
}

/**
 * RFC 4291 text form: eight groups of 1-4 hex digits, one `::` for a run of zero groups, the last
 * two groups optionally written as an IPv4 address.
 * @param {string} text
 * @returns {boolean}
 */
function isValidIpv6(text) {
  let hex = text;
  if (hex.includes('.')) {
    const lastColon = hex.lastIndexOf(':');
    if (!isValidIpv4(hex.slice(lastColon + 1))) return false;
    hex = `${hex.slice(0, lastColon + 1)}0:0`;
  }
  const gap = hex.indexOf('::');
  const [head, tail] = gap < 0 ? [hex, ''] : [hex.slice(0, gap), hex.slice(gap + 2)];
  const groups = [...(head === '' ? [] : head.split(':')), ...(tail === '' ? [] : tail.split(':'))];
  if (tail.includes('::') || !groups.every((group) => IPV6_GROUP_PATTERN.test(group))) return false;
  return gap < 0 ? groups.length === 8 : groups.length < 8;
}

/**
 * @param {ReceiptErrorCode} code
 * @param {string} message
 * @param {unknown} [cause]
 * @returns {never}
 */
function fail(code, message, cause) {
  throw new ReceiptError(code, message, cause === undefined ? undefined : { cause });
}

/**
 * A programming error in how the verifier is called, not a bad receipt.
 * @param {boolean} ok
 * @param {string} name
 * @param {string} expected
 * @param {unknown} got
 * @returns {asserts ok}
 */
function requireOption(ok, name, expected, got) {
  if (!ok) throw new TypeError(`createVerifier/verify: expected ${name} to be ${expected}, got ${describeType(got)}`);
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function describe(value) {
  return typeof value === 'string' ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value) : describeType(value);
}

/**
 * @param {unknown} value
 * @returns {string}
 */
function describeType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'bigint') return `the integer ${value}`;
  if (typeof value === 'number') return `the number ${value}`;
  if (typeof value === 'boolean') return String(value);
  if (value === undefined) return 'nothing';
  return `a ${typeof value}`;
}
