import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { KeySet, ReceiptError, createVerifier } from '../index.js';
import { CONTEXT, claims, createTestIssuer, encodeText } from '../testing/receipt-signer.js';

const issuer = createTestIssuer();
const keys = await KeySet.fromJwks(issuer.jwks);
const verifier = createVerifier({ issuer: CONTEXT.issuer, audience: CONTEXT.audience, payees: CONTEXT.payees, keys, clock: () => CONTEXT.now });
const validToken = issuer.sign(claims());
const validHeader = { alg: 'EdDSA', kid: issuer.kid, typ: 'trickle-receipt+jwt' };

/**
 * @param {unknown} token
 * @param {string} code
 * @param {import('../index.js').VerifyOptions} [options]
 */
async function rejects(token, code, options) {
  await assert.rejects(verifier.verify(token, options), (error) => {
    assert.ok(error instanceof ReceiptError, `expected ReceiptError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

/**
 * @param {string} token
 * @param {import('../index.js').VerifyOptions} [options]
 * @returns {Promise<void>}
 */
async function accepts(token, options) {
  await verifier.verify(token, options);
}

/** @param {string} token */
function withSignature(token, /** @type {(sig: string) => string} */ change) {
  const [h, p, s] = token.split('.');
  return `${h}.${p}.${change(s)}`;
}

describe('a valid receipt', () => {
  test('verifies to a frozen receipt with bigint amounts', async () => {
    const receipt = await verifier.verify(validToken);
    assert.deepEqual({ ...receipt }, {
      iss: CONTEXT.issuer, aud: CONTEXT.audience, pay: CONTEXT.payees[0], sid: 'p3Kq9vX2c0S7bW1mN8aYzA',
      seq: 3, amt: 333333n, tot: 1000000n, cur: 'USD', scale: 9, iat: 1795000000, exp: 1795000300,
      jti: 'rK2m0qv9X1Q7s8pA', bnd: null, otp: false, ord: null, oneTime: false, orderRef: null, token: validToken,
    });
    assert.ok(Object.isFrozen(receipt));
  });

  test('carries bnd and otp, ignores unknown claims and header members', async () => {
    const token = issuer.sign(claims({ bnd: 'session 42', otp: true, seq: 1, amt: '5', tot: '5', extra: { nested: [1, 2.5] } }), { ...validHeader, x5u: 'ignored' });
    const receipt = await verifier.verify(token, { binding: 'session 42' });
    assert.equal(receipt.bnd, 'session 42');
    assert.equal(receipt.otp, true);
    assert.equal(receipt.amt, 5n);
  });

  test('a one-time receipt exposes oneTime and orderRef (ord as given, not interpreted)', async () => {
    const token = issuer.sign(claims({ otp: true, seq: 1, amt: '250', tot: '250', ord: ' article 42/"x"~' }));
    const receipt = await verifier.verify(token);
    assert.equal(receipt.oneTime, true);
    assert.equal(receipt.otp, true);
    assert.equal(receipt.orderRef, ' article 42/"x"~');
    assert.equal(receipt.ord, ' article 42/"x"~');
  });

  test('accepts the largest amount, 2^63 - 1', async () => {
    const receipt = await verifier.verify(issuer.sign(claims({ amt: '9223372036854775807', tot: '9223372036854775807' })));
    assert.equal(receipt.tot, 2n ** 63n - 1n);
  });

  test('a __proto__ claim is data, not a prototype', async () => {
    const token = issuer.sign(`{"__proto__":{"polluted":1},${JSON.stringify(claims()).slice(1)}`);
    const receipt = await verifier.verify(token);
    assert.equal(Object.getPrototypeOf(receipt), Object.prototype);
    assert.equal(/** @type {any} */ ({}).polluted, undefined);
  });
});

describe('rule 1: size and type', () => {
  for (const token of [undefined, null, 42, {}, new TextEncoder().encode(validToken)]) {
    test(`a ${token === null ? 'null' : typeof token} token is malformed_jws`, () => rejects(token, 'malformed_jws'));
  }
  test('a 5000-byte token is token_too_large', () => rejects('a'.repeat(5000), 'token_too_large'));
  test('4096 bytes is not too large', () => rejects(`${'a'.repeat(4094)}.b`, 'malformed_jws'));
  test('bytes, not characters, are counted', () => rejects('é'.repeat(2049), 'token_too_large'));
});

describe('rule 2: compact serialization', () => {
  const [h, p, s] = validToken.split('.');
  const cases = {
    'two parts': `${h}.${p}`,
    'four parts': `${validToken}.${s}`,
    'an empty payload': `${h}..${s}`,
    'an empty signature': `${h}.${p}.`,
    'padding': `${h}.${p}.${s}==`,
    'the + / alphabet': `${h}.${p}.${s.slice(0, -2)}+/`,
    'non-canonical trailing bits': withSignature(validToken, (sig) => sig.slice(0, -1) + 'B'),
    'a 4n+1 length': `${h}.${p}.${s}A`,
    'a 63-byte signature': `${h}.${p}.${s.slice(0, 84)}`,
    'whitespace': `${h}.${p}.${s} `,
  };
  for (const [name, token] of Object.entries(cases)) {
    test(`${name} is malformed_jws`, () => rejects(token, 'malformed_jws'));
  }
});

describe('rules 3-8: header and signature', () => {
  const payload = claims();
  const cases = /** @type {[string, string | object, string][]} */ ([
    ['not JSON', '{"alg":"EdDSA",', 'malformed_header'],
    ['an array', '[]', 'malformed_header'],
    ['a duplicate alg', `{"alg":"none","alg":"EdDSA","kid":"${issuer.kid}","typ":"trickle-receipt+jwt"}`, 'malformed_header'],
    ['an escaped duplicate', `{"alg":"EdDSA","\\u0061lg":"EdDSA","kid":"${issuer.kid}","typ":"trickle-receipt+jwt"}`, 'malformed_header'],
    ['a BOM', `\ufeff${JSON.stringify(validHeader)}`, 'malformed_header'],
    ['crit', { ...validHeader, crit: ['exp'] }, 'malformed_header'],
    ['alg none', { ...validHeader, alg: 'none' }, 'unsupported_algorithm'],
    ['alg HS256', { ...validHeader, alg: 'HS256' }, 'unsupported_algorithm'],
    ['alg Ed25519', { ...validHeader, alg: 'Ed25519' }, 'unsupported_algorithm'],
    ['no alg', { kid: issuer.kid, typ: validHeader.typ }, 'unsupported_algorithm'],
    ['no kid', { alg: 'EdDSA', typ: validHeader.typ }, 'invalid_kid'],
    ['a numeric kid', { ...validHeader, kid: 7 }, 'invalid_kid'],
    ['a path kid', { ...validHeader, kid: '../keys/a' }, 'invalid_kid'],
    ['a 65-char kid', { ...validHeader, kid: 'k'.repeat(65) }, 'invalid_kid'],
    ['an unknown kid', { ...validHeader, kid: 'other-key' }, 'unknown_kid'],
    ['no typ', { alg: 'EdDSA', kid: issuer.kid }, 'wrong_type'],
    ['typ JWT', { ...validHeader, typ: 'JWT' }, 'wrong_type'],
  ]);
  for (const [name, header, code] of cases) {
    test(`a header with ${name} is ${code}`, () => rejects(issuer.sign(payload, header), code));
  }

  test('a header that is not UTF-8 is malformed_header', async () => {
    const token = issuer.sign(payload);
    const [, p, s] = token.split('.');
    await rejects(`${Buffer.from([0x7b, 0xff, 0x7d]).toString('base64url')}.${p}.${s}`, 'malformed_header');
  });

  test('a signature by another key under the same kid is bad_signature', async () => {
    const impostor = createTestIssuer(issuer.kid);
    await rejects(impostor.sign(payload), 'bad_signature');
  });

  test('a payload swapped under a valid signature is bad_signature', async () => {
    const [h, , s] = validToken.split('.');
    await rejects(`${h}.${encodeText(JSON.stringify(claims({ tot: '9000000' })))}.${s}`, 'bad_signature');
  });

  test('the signature is checked before the type', async () => {
    const [h, p] = issuer.sign(payload, { ...validHeader, typ: 'JWT' }).split('.');
    await rejects(`${h}.${p}.${'A'.repeat(86)}`, 'bad_signature');
  });
});

describe('rule 9: payload JSON', () => {
  const cases = {
    'not JSON': '{"iss":',
    'an array': '[1]',
    'a string': '"receipt"',
    'a duplicate tot': `${JSON.stringify(claims()).slice(0, -1)},"tot":"1"}`,
    'an escaped duplicate': `${JSON.stringify(claims()).slice(0, -1)},"\\u0074ot":"1"}`,
    'a nested duplicate': `${JSON.stringify(claims()).slice(0, -1)},"x":{"a":1,"a":2}}`,
    'trailing garbage': `${JSON.stringify(claims())}x`,
  };
  for (const [name, payload] of Object.entries(cases)) {
    test(`a payload that is ${name} is malformed_payload`, () => rejects(issuer.sign(payload), 'malformed_payload'));
  }
});

describe('rule 10: required claims', () => {
  for (const name of ['iss', 'aud', 'pay', 'sid', 'seq', 'amt', 'tot', 'cur', 'scale', 'iat', 'exp', 'jti']) {
    test(`no ${name} is missing_claim`, () => rejects(issuer.sign(claims({ [name]: undefined })), 'missing_claim'));
  }
});

describe('rule 11: claim shapes', () => {
  const cases = /** @type {[string, Record<string, unknown>][]} */ ([
    ['iss as a number', { iss: 1 }],
    ['aud as null', { aud: null }],
    ['pay as an array', { pay: [CONTEXT.payees[0]] }],
    ['a 65-char sid', { sid: 's'.repeat(65) }],
    ['an empty sid', { sid: '' }],
    ['a sid with a slash', { sid: 'a/b' }],
    ['a sid with a trailing newline', { sid: 'abc\n' }],
    ['seq 0', { seq: 0 }],
    ['seq 2^53', { seq: 2 ** 53 }],
    ['seq true', { seq: true }],
    ['seq as a string', { seq: '3' }],
    ['seq 3.0', { seq: '<3.0>' }],
    ['seq 3e0', { seq: '<3e0>' }],
    ['cur in lower case', { cur: 'usd' }],
    ['a 2-char cur', { cur: 'US' }],
    ['scale 19', { scale: 19 }],
    ['scale -1', { scale: -1 }],
    ['iat as a fraction', { iat: 1795000000.5 }],
    ['exp as a string', { exp: '1795000300' }],
    ['exp equal to iat', { exp: 1795000000 }],
    ['an empty jti', { jti: '' }],
    ['a 257-char bnd', { bnd: 'b'.repeat(257) }],
    ['an empty bnd', { bnd: '' }],
    ['a bnd with a control character', { bnd: 'a\tb' }],
    ['a non-ASCII bnd', { bnd: 'café' }],
    ['otp as a string', { otp: 'true' }],
    ['otp with seq 2', { otp: true, seq: 2, amt: '5', tot: '5' }],
    ['otp with amt below tot', { otp: true, seq: 1, amt: '4', tot: '5' }],
    ['otp with amt a string and tot a number (rule 11 comes before rule 17)', { otp: true, seq: 1, amt: '5', tot: 5 }],
    ['ord as a number', { ord: 42 }],
    ['ord null', { ord: null }],
    ['an empty ord', { ord: '' }],
    ['a 129-char ord', { ord: 'o'.repeat(129) }],
    ['an ord with a newline', { ord: 'a\nb' }],
    ['a non-ASCII ord', { ord: 'café' }],
    ['iat beyond 2^53 - 1', { iat: '<9007199254740992>' }],
    ['exp below -(2^53 - 1)', { exp: '<-9007199254740992>' }],
  ]);
  for (const [name, overrides] of cases) {
    test(`${name} is invalid_claim`, async () => {
      // '<3.0>' marks a raw JSON number literal that JSON.stringify cannot produce.
      const text = JSON.stringify(claims(overrides)).replace(/"<([^">]*)>"/g, '$1');
      await rejects(issuer.sign(text), 'invalid_claim');
    });
  }
});

describe('rules 12-16: issuer, audience, payee, time', () => {
  test('another issuer is wrong_issuer', () => rejects(issuer.sign(claims({ iss: 'https://evil.example' })), 'wrong_issuer'));
  test('another site is wrong_audience', () => rejects(issuer.sign(claims({ aud: 'https://blog.example:8443' })), 'wrong_audience'));
  test('another payee is wrong_payee', () => rejects(issuer.sign(claims({ pay: 'https://trickle.test/p/mallory' })), 'wrong_payee'));
  test('past exp + leeway is expired', () => rejects(validToken, 'expired', { now: 1795000300 + 61 }));
  test('within exp + leeway is valid', () => accepts(validToken, { now: 1795000300 + 60 }));
  test('a fraction of a second past exp + leeway is expired', () => rejects(validToken, 'expired', { now: 1795000360.5 }));
  test('iat beyond now + leeway is not_yet_valid', () => rejects(validToken, 'not_yet_valid', { now: 1795000000 - 61 }));
  test('iat within now + leeway is valid', () => accepts(validToken, { now: 1795000000 - 60 }));
  test('the leeway is configurable', async () => {
    const strict = createVerifier({ ...CONTEXT, keys, leewayS: 0 });
    await assert.rejects(strict.verify(validToken, { now: 1795000301 }), { code: 'expired' });
  });
  test('the issuer is checked before the amounts', () => rejects(issuer.sign(claims({ iss: 'x', amt: 5 })), 'wrong_issuer'));
  test('expiry is checked before the amounts', () => rejects(issuer.sign(claims({ amt: '-1' })), 'expired', { now: 1795001000 }));
});

describe('rules 17-18: amounts', () => {
  const cases = {
    'a JSON number': 333333,
    'a negative amount': '-1',
    'a plus sign': '+1',
    'a leading zero': '0333333',
    'a fraction': '1.5',
    'an exponent': '1e3',
    'an empty string': '',
    'a space': ' 1',
    'a value of 2^63': '9223372036854775808',
    'non-ASCII digits': '١٢',
    'null': null,
  };
  for (const [name, amt] of Object.entries(cases)) {
    test(`amt as ${name} is invalid_amount`, () => rejects(issuer.sign(claims({ amt })), 'invalid_amount'));
  }
  test('tot as a number is invalid_amount', () => rejects(issuer.sign(claims({ tot: 1000000 })), 'invalid_amount'));
  test('amt 0 is valid', () => accepts(issuer.sign(claims({ amt: '0' }))));
  test('tot below amt is total_below_amount', () => rejects(issuer.sign(claims({ amt: '10', tot: '9' })), 'total_below_amount'));
});

describe('rule 19: binding', () => {
  const bound = issuer.sign(claims({ bnd: 'visit-1' }));
  test('a matching bnd is valid', () => accepts(bound, { binding: 'visit-1' }));
  test('another bnd is binding_mismatch', () => rejects(bound, 'binding_mismatch', { binding: 'visit-2' }));
  test('no bnd when one is expected is binding_mismatch', () => rejects(validToken, 'binding_mismatch', { binding: 'visit-1' }));
  test('a bnd the site does not expect is ignored', () => accepts(bound));
});

describe('tampering', () => {
  test('flipping any bit of any byte is rejected with ReceiptError', async () => {
    const token = issuer.sign(claims({ bnd: 'visit-1' }));
    let flips = 0;
    for (let index = 0; index < token.length; index += 1) {
      for (let bit = 0; bit < 8; bit += 1) {
        const flipped = token.slice(0, index) + String.fromCharCode(token.charCodeAt(index) ^ (1 << bit)) + token.slice(index + 1);
        await assert.rejects(verifier.verify(flipped, { binding: 'visit-1' }), ReceiptError, `bit ${bit} of byte ${index}`);
        flips += 1;
      }
    }
    assert.equal(flips, token.length * 8);
  });
});

describe('configuration', () => {
  test('createVerifier refuses a missing issuer, no payees or a non-KeySet', () => {
    assert.throws(() => createVerifier({ ...CONTEXT, issuer: '', keys }), TypeError);
    assert.throws(() => createVerifier({ ...CONTEXT, payees: [], keys }), TypeError);
    assert.throws(() => createVerifier({ ...CONTEXT, payees: CONTEXT.payees[0], keys }), TypeError);
    assert.throws(() => createVerifier({ ...CONTEXT, keys: /** @type {any} */ (issuer.jwks) }), TypeError);
    assert.throws(() => createVerifier({ ...CONTEXT, keys, leewayS: 1.5 }), TypeError);
  });
  test('verify refuses a non-string binding', async () => {
    await assert.rejects(verifier.verify(validToken, { binding: /** @type {any} */ (42) }), TypeError);
  });
});
