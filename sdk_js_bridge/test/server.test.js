// The Node receipt handler (server.js) behind a real node:http server on an ephemeral port, fed with
// the shared vectors (tests/vectors/receipts.json) and with receipts signed by a throwaway key.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';

import { KeySet } from '../keys.js';
import { MAX_BODY_BYTES, MemorySiteStore, RESULT_CODES, createReceiptHandler } from '../server.js';
import { serve as serveAt, sessionOf } from '../testing/http-server.js';
import { CONTEXT, claims, createTestIssuer } from '../testing/receipt-signer.js';
import { loadVectors } from '../testing/vectors.js';

const vectors = loadVectors();
const vectorKeys = await KeySet.fromJwks(vectors.jwks);
const issuer = createTestIssuer();
const testKeys = await KeySet.fromJwks(issuer.jwks);

/** @param {Parameters<typeof serveAt>[0]} handler */
const serve = (handler) => serveAt(handler, '/trickle/receipts');

/**
 * @param {string} url
 * @param {string | null} session
 * @param {unknown} body  JSON-encoded unless a string
 * @param {Record<string, string>} [headers]
 * @returns {Promise<{status: number, body: any, headers: Headers}>}
 */
async function post(url, session, body, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      ...(session === null ? {} : { Cookie: `session=${session}` }),
      ...headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json(), headers: response.headers };
}

/**
 * @param {{clock?: () => number, store?: MemorySiteStore, requireBinding?: boolean, currency?: string, scale?: number}} [overrides]
 */
function vectorHandler(overrides = {}) {
  const { issuer: iss, audience, payees, now, leeway_s: leewayS } = vectors.verifier;
  return createReceiptHandler({
    keys: vectorKeys, issuer: iss, origin: audience, payees, leewayS, sessionOf,
    clock: () => now, requireBinding: false, ...overrides,
  });
}

describe('shared vectors through HTTP', () => {
  /** @type {{url: string, close: () => Promise<void>}} */
  let server;
  /** @type {ReturnType<typeof createReceiptHandler>} */
  let current;
  before(async () => {
    server = await serve((req, res) => current(req, res));
  });
  after(() => server.close());

  test('every credit sequence credits what the vector says, one request per receipt', async () => {
    for (const sequence of vectors.credit) {
      current = vectorHandler();
      let total = 0n;
      for (const [index, step] of sequence.steps.entries()) {
        const { status, body } = await post(server.url, 'visitor-1', { receipts: [step.token] });
        assert.equal(status, 200);
        assert.deepEqual(body.results, [{ code: 'ok', credited: step.credited }], `${sequence.name} step ${index}`);
        total += BigInt(step.credited);
        assert.deepEqual(body.paid, { total: total.toString(), currency: 'USD', scale: 9 });
      }
    }
  });

  test('every credit sequence credits the same in one batch, results in request order', async () => {
    for (const sequence of vectors.credit) {
      current = vectorHandler();
      const { body } = await post(server.url, 'visitor-1', { receipts: sequence.steps.map((step) => step.token) });
      assert.deepEqual(body.results, sequence.steps.map((step) => ({ code: 'ok', credited: step.credited })), sequence.name);
      const total = sequence.steps.reduce((sum, step) => sum + BigInt(step.credited), 0n);
      assert.equal(body.paid.total, total.toString());
    }
  });

  test('every valid vector credits its tot to a fresh site, or is wrong_asset outside USD/9', async () => {
    for (const vector of vectors.valid) {
      const store = new MemorySiteStore();
      if (typeof vector.claims.bnd === 'string') store.setBindingIfAbsent('visitor-1', vector.claims.bnd);
      const now = vector.now ?? vectors.verifier.now;
      current = vectorHandler({ store, clock: () => now });
      const { status, body } = await post(server.url, 'visitor-1', { receipts: [vector.token] });
      assert.equal(status, 200);
      const inAsset = vector.claims.cur === 'USD' && vector.claims.scale === 9;
      if (inAsset) assert.deepEqual(body.results, [{ code: 'ok', credited: vector.claims.tot }], vector.name);
      else assert.equal(body.results[0].code, 'wrong_asset', vector.name);
      assert.equal(body.paid.total, inAsset ? vector.claims.tot : '0', vector.name);
    }
  });

  test('every invalid vector is reported with its code and credits nothing', async () => {
    for (const vector of vectors.invalid) {
      const store = new MemorySiteStore();
      if (vector.binding !== null) store.setBindingIfAbsent('visitor-1', vector.binding);
      const now = vector.now ?? vectors.verifier.now;
      current = vectorHandler({ store, clock: () => now, requireBinding: vector.binding !== null });
      const { status, body } = await post(server.url, 'visitor-1', { receipts: [vector.token] });
      assert.equal(status, 200, vector.name);
      assert.equal(body.results.length, 1);
      assert.equal(body.results[0].code, vector.code, vector.name);
      assert.equal(typeof body.results[0].message, 'string');
      assert.equal(body.results[0].credited, undefined);
      assert.equal(body.paid.total, '0', vector.name);
      assert.ok(RESULT_CODES.includes(body.results[0].code));
    }
  });
});

describe('a site with visitor bindings', () => {
  let now = CONTEXT.now;
  const handler = createReceiptHandler({
    keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees],
    sessionOf, clock: () => now,
  });
  /** @type {{url: string, close: () => Promise<void>}} */
  let server;
  before(async () => {
    server = await serve(handler);
  });
  after(() => server.close());

  /**
   * @param {string} session
   * @param {Record<string, unknown>} overrides
   */
  async function signedFor(session, overrides) {
    return issuer.sign(claims({ bnd: await handler.bindingFor(session), ...overrides }));
  }

  test('bindingFor gives each session its own stable random value', async () => {
    const a = await handler.bindingFor('alice-session');
    assert.equal(await handler.bindingFor('alice-session'), a);
    assert.notEqual(await handler.bindingFor('bob-session'), a);
    assert.match(a, /^[A-Za-z0-9_-]{22}$/);
  });

  test('a receipt credits the increase of tot for its own visitor; a replay credits 0', async () => {
    const first = await signedFor('v-replay', { sid: 'replayStream', seq: 1, amt: '400', tot: '400', jti: 'r1' });
    const second = await signedFor('v-replay', { sid: 'replayStream', seq: 2, amt: '600', tot: '1000', jti: 'r2' });
    let answer = await post(server.url, 'v-replay', { receipts: [first, second] });
    assert.deepEqual(answer.body.results, [{ code: 'ok', credited: '400' }, { code: 'ok', credited: '600' }]);
    assert.deepEqual(answer.body.paid, { total: '1000', currency: 'USD', scale: 9 });
    answer = await post(server.url, 'v-replay', { receipts: [second, first] });
    assert.deepEqual(answer.body.results, [{ code: 'ok', credited: '0' }, { code: 'ok', credited: '0' }]);
    assert.equal(answer.body.paid.total, '1000');
    assert.equal(await handler.paid('v-replay'), 1000n);
  });

  test("a receipt copied from one visitor's session does not credit another's", async () => {
    const token = await signedFor('v-owner', { sid: 'copiedStream', tot: '5000', amt: '5000', seq: 1 });
    const thief = await post(server.url, 'v-thief', { receipts: [token] });
    assert.equal(thief.body.results[0].code, 'binding_mismatch');
    assert.equal(thief.body.paid.total, '0');
    assert.equal(await handler.hasPaid('v-thief', { atLeastMinor: 1n }), false);
    // The rightful visitor still gets it: the rejected copy did not use up the stream.
    const owner = await post(server.url, 'v-owner', { receipts: [token] });
    assert.deepEqual(owner.body.results, [{ code: 'ok', credited: '5000' }]);
  });

  test('a receipt without bnd credits nobody when bindings are required', async () => {
    const token = issuer.sign(claims({ sid: 'unboundStream' }));
    const { body } = await post(server.url, 'v-unbound', { receipts: [token] });
    assert.equal(body.results[0].code, 'binding_mismatch');
    assert.equal(body.paid.total, '0');
  });

  test('forged, foreign and expired receipts credit nothing and carry their codes', async () => {
    const session = 'v-bad';
    const bnd = await handler.bindingFor(session);
    const forger = createTestIssuer(issuer.kid); // same kid, another key
    const receipts = [
      forger.sign(claims({ bnd, sid: 'forged' })),
      issuer.sign(claims({ bnd, sid: 'foreignSite', aud: 'https://other.example' })),
      issuer.sign(claims({ bnd, sid: 'foreignPayee', pay: 'https://trickle.test/p/mallory' })),
      issuer.sign(claims({ bnd, sid: 'expiredStream', iat: CONTEXT.now - 1000, exp: CONTEXT.now - 100 })),
      issuer.sign(claims({ bnd, sid: 'otherAsset', cur: 'EUR' })),
      issuer.sign(claims({ bnd, sid: 'otherScale', scale: 6 })),
      'not a receipt',
    ];
    const { status, body } = await post(server.url, session, { receipts });
    assert.equal(status, 200);
    assert.deepEqual(body.results.map((/** @type {{code: string}} */ r) => r.code), [
      'bad_signature', 'wrong_audience', 'wrong_payee', 'expired', 'wrong_asset', 'wrong_asset', 'malformed_jws',
    ]);
    assert.ok(body.results.every((/** @type {{credited?: string}} */ r) => r.credited === undefined));
    assert.equal(body.paid.total, '0');
  });

  test('hasPaid: at least X, all time or within the last N seconds', async () => {
    const session = 'v-window';
    now = CONTEXT.now;
    const early = await signedFor(session, { sid: 'windowStream', seq: 1, amt: '300', tot: '300', jti: 'w1' });
    await post(server.url, session, { receipts: [early] });
    now = CONTEXT.now + 200;
    const later = await signedFor(session, { sid: 'windowStream', seq: 2, amt: '200', tot: '500', jti: 'w2', iat: now - 10, exp: now + 300 });
    await post(server.url, session, { receipts: [later] });

    assert.equal(await handler.hasPaid(session, { atLeastMinor: 500n }), true);
    assert.equal(await handler.hasPaid(session, { atLeastMinor: '501' }), false);
    assert.equal(await handler.paid(session, { withinSeconds: 60 }), 200n);
    assert.equal(await handler.hasPaid(session, { atLeastMinor: 200n, withinSeconds: 60 }), true);
    assert.equal(await handler.hasPaid(session, { atLeastMinor: 201n, withinSeconds: 60 }), false);
    assert.equal(await handler.hasPaid(session, { atLeastMinor: 500n, withinSeconds: 200 }), true);
    assert.equal(await handler.hasPaid('nobody'), false);
    now = CONTEXT.now;
  });

  test('hasPaid refuses a money amount given as a number', async () => {
    await assert.rejects(handler.hasPaid('v-window', { atLeastMinor: /** @type {any} */ (1.5) }), TypeError);
    await assert.rejects(handler.hasPaid('v-window', { atLeastMinor: /** @type {any} */ (100) }), TypeError);
    await assert.rejects(handler.hasPaid('v-window', { atLeastMinor: '-1' }), TypeError);
    await assert.rejects(handler.hasPaid('', {}), TypeError);
  });

  test('an empty batch only reports paid', async () => {
    const { status, body } = await post(server.url, 'v-replay', { receipts: [] });
    assert.equal(status, 200);
    assert.deepEqual(body, { results: [], paid: { total: '1000', currency: 'USD', scale: 9 } });
  });
});

describe('request errors have the typed error shape', () => {
  /** @type {unknown[]} */
  const internal = [];
  const handler = createReceiptHandler({
    keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees],
    sessionOf: (req) => {
      if (req.headers['x-explode'] !== undefined) throw new Error('session store down: secret=hunter2');
      return sessionOf(req);
    },
    clock: () => CONTEXT.now,
    onError: (error) => internal.push(error),
  });
  /** @type {{url: string, close: () => Promise<void>}} */
  let server;
  before(async () => {
    server = await serve(handler);
  });
  after(() => server.close());

  /**
   * @param {{status: number, body: any}} response
   * @param {number} status
   * @param {string} code
   */
  function assertError(response, status, code) {
    assert.equal(response.status, status);
    assert.deepEqual(Object.keys(response.body), ['error']);
    assert.equal(response.body.error.code, code);
    assert.equal(typeof response.body.error.message, 'string');
  }

  test('GET is method_not_allowed', async () => {
    const response = await fetch(server.url);
    assertError({ status: response.status, body: await response.json() }, 405, 'method_not_allowed');
    assert.equal(response.headers.get('allow'), 'POST');
  });

  test('a body that is not application/json is unsupported_media_type', async () => {
    assertError(await post(server.url, 'v', '{"receipts":[]}', { 'Content-Type': 'text/plain' }), 415, 'unsupported_media_type');
    assert.equal((await post(server.url, 'v', '{"receipts":[]}', { 'Content-Type': 'application/json; charset=utf-8' })).status, 200);
  });

  test('malformed JSON and non-UTF-8 bodies are malformed_json', async () => {
    assertError(await post(server.url, 'v', '{"receipts": ['), 400, 'malformed_json');
    assertError(await post(server.url, 'v', ''), 400, 'malformed_json');
    const response = await fetch(server.url, {
      method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: 'session=v' },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
    });
    assertError({ status: response.status, body: await response.json() }, 400, 'malformed_json');
  });

  test('a body of the wrong shape is validation_failed', async () => {
    for (const body of [[], 'x', null, {}, { receipts: 'abc' }, { receipts: [1] }, { receipts: [null] },
      { receipts: [], extra: 1 }, { receipts: Array(101).fill('x') }]) {
      assertError(await post(server.url, 'v', JSON.stringify(body)), 422, 'validation_failed');
    }
    assert.equal((await post(server.url, 'v', { receipts: Array(100).fill('x') })).status, 200);
  });

  test('a body over the limit is body_too_large, announced or streamed', async () => {
    const big = JSON.stringify({ receipts: ['x'.repeat(MAX_BODY_BYTES)] });
    assertError(await post(server.url, 'v', big), 413, 'body_too_large');
    const streamed = await new Promise((resolve, reject) => {
      const req = request(server.url, { method: 'POST', headers: { 'Content-Type': 'application/json', Cookie: 'session=v' } }, (res) => {
        let text = '';
        res.on('data', (chunk) => { text += chunk; });
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
      });
      req.on('error', reject);
      for (let i = 0; i < 9; i += 1) req.write('x'.repeat(65536)); // chunked: no Content-Length
      req.end();
    });
    assertError(/** @type {any} */ (streamed), 413, 'body_too_large');
  });

  test('a request without a visitor session is unauthenticated', async () => {
    assertError(await post(server.url, null, { receipts: [] }), 401, 'unauthenticated');
  });

  test('an internal failure is internal_error without details, and reaches onError', async () => {
    const response = await post(server.url, 'v', { receipts: [] }, { 'X-Explode': '1' });
    assertError(response, 500, 'internal_error');
    assert.doesNotMatch(JSON.stringify(response.body), /hunter2|session store/);
    assert.equal(internal.length, 1);
  });
});

test('requireBinding false: unbound receipts credit, a receipt bound to another session still does not', async () => {
  const handler = createReceiptHandler({
    keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees],
    sessionOf, clock: () => CONTEXT.now, requireBinding: false,
  });
  const server = await serve(handler);
  try {
    const other = await handler.bindingFor('someone-else');
    const own = await handler.bindingFor('me');
    const receipts = [
      issuer.sign(claims({ sid: 'unbound', tot: '10', amt: '10', seq: 1 })),
      issuer.sign(claims({ sid: 'boundElsewhere', tot: '20', amt: '20', seq: 1, bnd: other })),
      issuer.sign(claims({ sid: 'boundHere', tot: '30', amt: '30', seq: 1, bnd: own })),
    ];
    const { body } = await post(server.url, 'me', { receipts });
    assert.deepEqual(body.results.map((/** @type {{code: string}} */ r) => r.code), ['ok', 'binding_mismatch', 'ok']);
    assert.equal(body.paid.total, '40');
    // A later receipt of the stream 'me' started, forwarded by someone else: the stream stays 'me's.
    const next = issuer.sign(claims({ sid: 'unbound', tot: '25', amt: '15', seq: 2, jti: 'next' }));
    const stolen = await post(server.url, 'someone-else', { receipts: [next] });
    assert.equal(stolen.body.results[0].code, 'session_mismatch');
    assert.equal(stolen.body.paid.total, '0');
    const mine = await post(server.url, 'me', { receipts: [next] });
    assert.deepEqual(mine.body.results, [{ code: 'ok', credited: '15' }]);
    assert.equal(mine.body.paid.total, '55');
  } finally {
    await server.close();
  }
});

test('createReceiptHandler refuses a misconfiguration', () => {
  const base = { keys: testKeys, issuer: CONTEXT.issuer, origin: CONTEXT.audience, payees: [...CONTEXT.payees], sessionOf };
  assert.throws(() => createReceiptHandler({ ...base, sessionOf: /** @type {any} */ (undefined) }), TypeError);
  assert.throws(() => createReceiptHandler({ ...base, origin: '' }), TypeError);
  assert.throws(() => createReceiptHandler({ ...base, scale: 19 }), TypeError);
});
