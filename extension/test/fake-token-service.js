// A fake Trickle service for the private-payment tests: the reader's API the background calls
// (sessions, settings, site rules), the token key document, issuance (idempotent by
// Idempotency-Key, charging the balance once), refunds, private one-time payments, and the
// anonymous socket's start / spend answered with receipts. Tokens are real RFC 9497 VOPRF
// evaluations (the vendored @noble/curves), checked on spending as the service checks them.
// `readerKey` makes it evaluate with a key of the reader's own (the attack the client must catch).

import { fromB64url, toB64url } from '../shared/tokens.js';
import { ristretto255_oprf } from '../vendor/noble-voprf.js';
import { FakeWebSocket } from './fakes.js';

const { voprf } = ristretto255_oprf;
/** @type {(secretKey: Uint8Array, input: Uint8Array) => Uint8Array} */
const evaluate = /** @type {any} */ (voprf).evaluate;

export const SESSION_TOKEN = 'trk_secret_session_token';
export const EPOCH = 202612;
export const VALUE_MINOR = 1_000_000n;

/** @param {number} status @param {any} body */
const answer = (status, body) => ({ ok: status < 300, status, type: 'basic', json: async () => body });
/** @param {string} code @param {number} status @param {string} [message] */
const refuse = (code, status, message = code) => answer(status, { error: { code, message } });

export class FakeTokenService {
  constructor() {
    this.keyPair = voprf.generateKeyPair();
    /** @type {{secretKey: Uint8Array, publicKey: Uint8Array} | null} evaluate with this instead (per-reader key) */
    this.readerKey = null;
    this.balance = 5_000_000_000n;
    this.rate = '600000000';
    this.paused = false;
    /** @type {{origin: string, rate_per_hour_minor: string | null, disabled: boolean}[]} */
    this.overrides = [];
    /** @type {Map<string, {hash: string, body: any}>} */
    this.issuances = new Map();
    /** @type {Map<string, any>} */
    this.refunds = new Map();
    /** @type {Set<string>} the inputs of spent or refunded tokens */
    this.spent = new Set();
    /** @type {{path: string, method: string, headers: Record<string, string>, body: any, credentials: string | undefined}[]} */
    this.calls = [];
    /** The next this many token calls commit, and their answer is lost. */
    this.loseAnswers = 0;
    /** @type {string | null} the next issuance is refused with this code */
    this.refuseIssuance = null;
    /** @type {Record<string, bigint>} paid per payee pointer, by spent tokens */
    this.paid = {};
    this.receipts = 0;
    /** @type {Map<string, {stream: string, sid: string, pointer: string, origin: string, seq: number, tot: bigint}>} */
    this.privateStreams = new Map();
  }

  keyDocument() {
    const year = new Date().getUTCFullYear();
    return {
      keys: [
        {
          currency: 'USD',
          scale: 9,
          epoch: EPOCH,
          value_minor: VALUE_MINOR.toString(),
          public_key: toB64url(this.keyPair.publicKey),
          issue_from: `${year - 1}-01-01T00:00:00Z`,
          issue_until: `${year + 1}-01-01T00:00:00Z`,
          spend_until: `${year + 1}-02-01T00:00:00Z`,
        },
      ],
    };
  }

  /**
   * Whether a token is one of this service's, unspent: Evaluate(sk, input) == output.
   * @param {any} token
   */
  valid(token) {
    const input = fromB64url(token?.input, 32);
    const output = fromB64url(token?.output, 64);
    if (!input || !output || token.epoch !== EPOCH) return false;
    return toB64url(evaluate(this.keyPair.secretKey, input)) === toB64url(output);
  }

  /**
   * Check and spend tokens all or nothing; null when spent, else the refusal.
   * @param {any[]} tokens
   * @returns {{code: string, index: number} | null}
   */
  spend(tokens) {
    for (const [index, token] of tokens.entries()) {
      if (!this.valid(token)) return { code: 'invalid_token', index };
      if (this.spent.has(token.input)) return { code: 'token_spent', index };
    }
    for (const token of tokens) this.spent.add(token.input);
    return null;
  }

  /** The fetch the background calls. @param {string} url @param {any} init */
  fetch = async (url, init = {}) => {
    const path = new URL(url).pathname;
    const headers = init.headers ?? {};
    const body = init.body ? JSON.parse(init.body) : null;
    this.calls.push({ path, method: init.method ?? 'GET', headers, body, credentials: init.credentials });
    const authed = headers.Authorization === `Bearer ${SESSION_TOKEN}`;
    if (path === '/api/v1/sessions' && init.method === 'POST') return answer(201, { token: SESSION_TOKEN, user: { email: body.email } });
    if (path === '/.well-known/trickle-token-keys') return answer(200, this.keyDocument());
    if (path === '/api/v1/private/payments') return this.privatePayment(headers, body);
    if (!authed) return refuse('unauthenticated', 401);
    if (path === '/api/v1/me/settings') {
      return answer(200, { rate_per_hour_minor: this.rate, monthly_budget_minor: '5000000000', paused: this.paused, currency: 'USD', scale: 9 });
    }
    if (path === '/api/v1/me/site-overrides') return answer(200, { overrides: this.overrides });
    if (path === '/api/v1/sessions/current') return answer(200, { revoked: 1 });
    if (path === '/api/v1/tokens') return this.issue(headers['Idempotency-Key'], body);
    if (path === '/api/v1/tokens/refund') return this.refund(headers['Idempotency-Key'], body);
    return refuse('not_found', 404);
  };

  /** @param {string} key @param {any} body */
  issue(key, body) {
    const hash = JSON.stringify(body);
    const stored = this.issuances.get(key);
    if (stored) {
      if (stored.hash !== hash) return refuse('idempotency_key_reused', 422);
      return answer(200, stored.body);
    }
    if (this.refuseIssuance) {
      const code = this.refuseIssuance;
      this.refuseIssuance = null;
      return refuse(code, 409);
    }
    if (body.epoch !== EPOCH) return refuse('unknown_epoch', 409);
    const cost = BigInt(body.blinded.length) * VALUE_MINOR;
    if (cost > this.balance) return refuse('insufficient_funds', 409);
    this.balance -= cost;
    const key_ = this.readerKey ?? this.keyPair;
    const blinded = body.blinded.map((/** @type {string} */ b) => /** @type {Uint8Array} */ (fromB64url(b, 32)));
    const { evaluated, proof } = voprf.blindEvaluateBatch(key_.secretKey, key_.publicKey, blinded);
    const response = {
      currency: 'USD',
      scale: 9,
      epoch: EPOCH,
      value_minor: VALUE_MINOR.toString(),
      count: blinded.length,
      evaluated: evaluated.map(toB64url),
      proof: toB64url(proof),
      balance_minor: this.balance.toString(),
    };
    this.issuances.set(key, { hash, body: response });
    if (this.loseAnswers > 0) {
      this.loseAnswers -= 1;
      throw new TypeError('network error: the answer was lost');
    }
    return answer(201, response);
  }

  /** @param {string} key @param {any} body */
  refund(key, body) {
    const stored = this.refunds.get(key);
    if (stored) return answer(200, stored);
    const refused = this.spend(body.tokens);
    if (refused) return refuse(refused.code, 409, `tokens[${refused.index}]: ${refused.code}`);
    this.balance += BigInt(body.tokens.length) * VALUE_MINOR;
    const response = { count: body.tokens.length, balance_minor: this.balance.toString() };
    this.refunds.set(key, response);
    return answer(200, response);
  }

  /** @param {Record<string, string>} headers @param {any} body */
  privatePayment(headers, body) {
    const n = (BigInt(body.amount_minor) + VALUE_MINOR - 1n) / VALUE_MINOR;
    if (BigInt(body.tokens.length) !== n) return refuse(body.tokens.length > n ? 'too_many_tokens' : 'not_enough_tokens', 422);
    const refused = this.spend(body.tokens);
    if (refused) return refuse(refused.code, 409, `tokens[${refused.index}]: ${refused.code}`);
    this.paid[body.payment_pointer] = (this.paid[body.payment_pointer] ?? 0n) + n * VALUE_MINOR;
    void headers;
    return answer(201, { sid: `psid-${this.receipts}`, receipt: `jws.private.${++this.receipts}`, amount_minor: body.amount_minor, currency: 'USD', scale: 9 });
  }

  /** Answer the anonymous socket (install as FakeWebSocket.responder). @param {FakeWebSocket} socket @param {any} m */
  serveSocket = (socket, m) => {
    if (!socket.url.endsWith('/api/v1/private-stream')) return;
    if (m.type === 'hello') queueMicrotask(() => socket.serve({ type: 'welcome', v: 1, private: true, interval_ms: 2000 }));
    if (m.type === 'start') {
      const sid = `sid-${this.privateStreams.size + 1}`;
      this.privateStreams.set(m.stream, { stream: m.stream, sid, pointer: m.pointer, origin: m.origin, seq: 0, tot: 0n });
      queueMicrotask(() => socket.serve({ type: 'started', stream: m.stream, sid }));
    }
    if (m.type === 'spend') {
      const s = this.privateStreams.get(m.stream);
      if (!s) return;
      const refused = this.spend(m.tokens);
      if (refused) {
        queueMicrotask(() => socket.serve({ type: 'error', code: refused.code, message: refused.code, stream: m.stream, sid: s.sid, index: refused.index }));
        return;
      }
      const amt = BigInt(m.tokens.length) * VALUE_MINOR;
      this.paid[s.pointer] = (this.paid[s.pointer] ?? 0n) + amt;
      s.seq += 1;
      s.tot += amt;
      this.receipts += 1;
      const receipt = { type: 'receipt', stream: m.stream, sid: s.sid, seq: s.seq, amt: amt.toString(), tot: s.tot.toString(), receipt: `jws.${s.sid}.${s.seq}` };
      queueMicrotask(() => socket.serve(receipt));
    }
  };
}

/** Let pending promises and microtasks run. */
export async function settleAll(rounds = 20) {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

export { FakeWebSocket };
