import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';

import { decodeBase64url, encodeBase64url } from '../base64url.js';

test('round-trips every length 0..40 and matches Buffer', () => {
  for (let length = 0; length <= 40; length += 1) {
    const bytes = new Uint8Array(randomBytes(length));
    const text = encodeBase64url(bytes);
    assert.equal(text, Buffer.from(bytes).toString('base64url'));
    assert.deepEqual(decodeBase64url(text), bytes);
  }
});

test('rejects everything but the canonical encoding', () => {
  for (const text of ['QQ==', 'QQ=', 'a+b/', 'ab cd', 'abcde', 'QR', 'QUJ', 'Q\u00e9', '\u0000AAA']) {
    assert.throws(() => decodeBase64url(text), SyntaxError, text);
  }
  assert.deepEqual(decodeBase64url('QQ'), new Uint8Array([0x41]));
  assert.deepEqual(decodeBase64url('QUI'), new Uint8Array([0x41, 0x42]));
});
