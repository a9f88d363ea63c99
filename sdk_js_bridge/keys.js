/**
 * The issuer's public keys: a JWK Set (RFC 7517) of Ed25519 keys, imported once into WebCrypto
 * and looked up by `kid`. A key set loaded from a URL refetches at most once per refresh
 * interval, so forged `kid`s cannot make a verifier flood the service.
 */

import { decodeBase64url } from './base64url.js';
import { KeySetError } from './errors.js';
import { parseStrictJson } from './strict-json.js';

export const KID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_JWKS_CHARS = 1_000_000;

/**
 * @typedef {(input: string, init: {signal: AbortSignal, headers: Record<string, string>, redirect: 'follow'}) =>
 *   Promise<{ok: boolean, status: number, text(): Promise<string>}>} FetchLike
 *   The subset of `fetch` a `KeySet` uses.
 */

/**
 * @typedef {object} KeySetUrlOptions
 * @property {number} [timeoutMs]  per fetch; default 5000
 * @property {number} [refreshIntervalMs]  minimum time between two fetches; default 300000 (the
 *   JWKS `max-age`). The set is also refetched once it is this old, so retired keys drop out.
 * @property {FetchLike} [fetch]  default `globalThis.fetch`
 * @property {() => number} [nowMs]  clock in milliseconds; default `Date.now` (tests inject one)
 */

/** @returns {SubtleCrypto} */
function subtleCrypto() {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) {
    throw new KeySetError('crypto_unavailable', 'expected WebCrypto (globalThis.crypto.subtle), got none: use Node >= 20 or a secure browser context');
  }
  return subtle;
}

/**
 * Import the usable keys of a JWK Set. Keys of other types (kty/crv/alg/use) are skipped, as
 * JOSE libraries do; an Ed25519 key with a bad `kid` or `x` or a private part `d`, a repeated
 * `kid`, a member that is not an object, or a set without any usable key is an error (the same
 * rules as the Python verifier's `KeySet`).
 * @param {unknown} doc  the parsed JWK Set
 * @returns {Promise<Map<string, CryptoKey>>}
 */
async function importJwks(doc) {
  if (typeof doc !== 'object' || doc === null || !Array.isArray(/** @type {{keys?: unknown}} */ (doc).keys)) {
    throw new KeySetError('invalid_jwks', 'expected a JWK Set object {"keys": [...]}, got something else');
  }
  const subtle = subtleCrypto();
  /** @type {Map<string, CryptoKey>} */
  const keys = new Map();
  for (const jwk of /** @type {{keys: unknown[]}} */ (doc).keys) {
    if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) {
      throw new KeySetError('invalid_jwks', 'expected every member of keys to be a JWK object, got something else');
    }
    const { kty, crv, alg, use, kid, x } = /** @type {Record<string, unknown>} */ (jwk);
    if (kty !== 'OKP' || crv !== 'Ed25519') continue;
    if (alg !== undefined && alg !== 'EdDSA') continue;
    if (use !== undefined && use !== 'sig') continue;
    if (Object.hasOwn(jwk, 'd')) {
      throw new KeySetError('invalid_jwks', `key ${JSON.stringify(kid)}: expected a public JWK, got private key material (d)`);
    }
    if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) {
      throw new KeySetError('invalid_jwks', `expected each Ed25519 key to have a kid matching ${KID_PATTERN}, got ${JSON.stringify(kid)}`);
    }
    if (keys.has(kid)) {
      throw new KeySetError('invalid_jwks', `expected unique kids in the JWK Set, got ${JSON.stringify(kid)} twice`);
    }
    keys.set(kid, await importPublicKey(subtle, kid, x));
  }
  if (keys.size === 0) {
    throw new KeySetError('invalid_jwks', 'expected at least one Ed25519 (kty OKP, crv Ed25519) key in the JWK Set, got none');
  }
  return keys;
}

/**
 * @param {SubtleCrypto} subtle
 * @param {string} kid
 * @param {unknown} x
 * @returns {Promise<CryptoKey>}
 */
async function importPublicKey(subtle, kid, x) {
  let raw;
  try {
    raw = typeof x === 'string' ? decodeBase64url(x) : undefined;
  } catch (error) {
    throw new KeySetError('invalid_jwks', `key ${kid}: expected x in canonical base64url, got ${JSON.stringify(x)}`, { cause: error });
  }
  if (raw === undefined || raw.length !== 32) {
    throw new KeySetError('invalid_jwks', `key ${kid}: expected x to be a 32-byte Ed25519 public key, got ${raw === undefined ? typeof x : `${raw.length} bytes`}`);
  }
  try {
    return await subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    throw new KeySetError('crypto_unavailable', `key ${kid}: WebCrypto could not import an Ed25519 key`, { cause: error });
  }
}

/**
 * The issuer's public keys, by `kid`. Build one with `KeySet.fromJwks` or `KeySet.fromUrl`.
 */
export class KeySet {
  /** @type {Map<string, CryptoKey>} */
  #keys;
  /** @type {null | (() => Promise<Map<string, CryptoKey>>)} */
  #load;
  #refreshIntervalMs;
  #nowMs;
  #loadedAtMs;
  /** @type {Promise<void> | null} */
  #refreshing = null;

  /**
   * @param {Map<string, CryptoKey>} keys
   * @param {null | (() => Promise<Map<string, CryptoKey>>)} load  refetches the set; null for a static set
   * @param {number} refreshIntervalMs
   * @param {() => number} nowMs
   * @private use `KeySet.fromJwks` or `KeySet.fromUrl`
   */
  constructor(keys, load, refreshIntervalMs, nowMs) {
    this.#keys = keys;
    this.#load = load;
    this.#refreshIntervalMs = refreshIntervalMs;
    this.#nowMs = nowMs;
    this.#loadedAtMs = nowMs();
  }

  /**
   * A fixed key set from a JWK Set document (an object or its JSON text).
   * @param {unknown} doc
   * @returns {Promise<KeySet>}
   */
  static async fromJwks(doc) {
    const parsed = typeof doc === 'string' ? parseJwksText(doc) : doc;
    return new KeySet(await importJwks(parsed), null, Infinity, Date.now);
  }

  /**
   * A key set fetched from `url` (normally `<iss>/.well-known/jwks.json`). The first fetch happens
   * now and must succeed. Later, a lookup refetches when it meets an unknown `kid` or the set is
   * older than `refreshIntervalMs` — but never more than once per `refreshIntervalMs`; a failed
   * refetch keeps the previous keys.
   * @param {string} url
   * @param {KeySetUrlOptions} [options]
   * @returns {Promise<KeySet>}
   */
  static async fromUrl(url, { timeoutMs = 5000, refreshIntervalMs = 300_000, fetch = globalThis.fetch, nowMs = Date.now } = {}) {
    if (typeof fetch !== 'function') {
      throw new KeySetError('jwks_fetch_failed', 'expected a fetch function (globalThis.fetch or options.fetch), got none');
    }
    const load = () => fetchJwks(url, fetch, timeoutMs);
    return new KeySet(await load(), load, refreshIntervalMs, nowMs);
  }

  /** The kids currently known, for diagnostics. */
  get kids() {
    return [...this.#keys.keys()];
  }

  /**
   * The key for `kid`, refetching the set first if allowed (see `fromUrl`).
   * @param {string} kid  already checked against the kid pattern
   * @returns {Promise<CryptoKey | undefined>}
   */
  async lookup(kid) {
    if (this.#load !== null) {
      const stale = this.#nowMs() - this.#loadedAtMs >= this.#refreshIntervalMs;
      if (stale || !this.#keys.has(kid)) await this.#refresh();
    }
    return this.#keys.get(kid);
  }

  /** Refetch unless the last fetch attempt is younger than the refresh interval; one at a time. */
  async #refresh() {
    if (this.#refreshing !== null) return this.#refreshing;
    if (this.#load === null || this.#nowMs() - this.#loadedAtMs < this.#refreshIntervalMs) return;
    // Counted from the attempt, not its success: a failing service must not be hammered either.
    this.#loadedAtMs = this.#nowMs();
    const load = this.#load;
    this.#refreshing = (async () => {
      try {
        this.#keys = await load();
      } catch (error) {
        if (!(error instanceof KeySetError)) throw error;
        // Keep serving the previous keys; an unknown kid is then reported by the verifier.
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }
}

/**
 * @param {string} url
 * @param {FetchLike} fetch
 * @param {number} timeoutMs
 * @returns {Promise<Map<string, CryptoKey>>}
 */
async function fetchJwks(url, fetch, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  let text;
  try {
    const response = await fetch(url, { signal: controller.signal, headers: { accept: 'application/json' }, redirect: 'follow' });
    if (!response.ok) {
      throw new KeySetError('jwks_fetch_failed', `GET ${url}: expected status 200, got ${response.status}`);
    }
    text = await response.text();
  } catch (error) {
    if (error instanceof KeySetError) throw error;
    const reason = controller.signal.aborted ? `timed out after ${timeoutMs} ms` : String(error);
    throw new KeySetError('jwks_fetch_failed', `GET ${url}: expected a JWK Set, got ${reason}`, { cause: error });
  } finally {
    clearTimeout(timer);
  }
  if (text.length > MAX_JWKS_CHARS) {
    throw new KeySetError('invalid_jwks', `GET ${url}: expected a JWK Set under ${MAX_JWKS_CHARS} characters, got ${text.length}`);
  }
  return importJwks(parseJwksText(text));
}

/**
 * @param {string} text
 * @returns {unknown}
 */
function parseJwksText(text) {
  try {
    return parseStrictJson(text);
  } catch (error) {
    throw new KeySetError('invalid_jwks', `expected a JWK Set as JSON text, got ${/** @type {Error} */ (error).message}`, { cause: error });
  }
}
