// The extension's side of the token protocol against the service's own vectors
// (tests/vectors/token-protocol.json, which trickle.tokens computes): the published key document
// read, the issuance answer checked and finalized into exactly the service's tokens, and a
// private payment's price in tokens.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { fromB64url, parseIssuance, parseKeyDocument, publishedKey, toB64url, tokensForPrice } from '../shared/tokens.js';
import { finalizeBatch } from '../shared/voprf.js';

const V = JSON.parse(readFileSync(new URL('../../tests/vectors/token-protocol.json', import.meta.url), 'utf8'));
/** @param {string} hex */
const bytes = (hex) => new Uint8Array(Buffer.from(hex, 'hex'));

test('the key document, the issuance answer and the tokens are the service\'s, byte for byte', () => {
  const keys = parseKeyDocument(V.key_document);
  const { request, response } = V.issuance;
  const key = publishedKey(keys, request.currency, request.epoch);
  assert.ok(key);
  assert.equal(key.valueMinor, V.key_document.keys[0].value_minor);
  assert.equal(key.spendUntil, Date.parse(V.key_document.keys[0].spend_until));
  const { evaluated, proof, balanceMinor } = parseIssuance(response, { currency: request.currency, epoch: request.epoch, count: request.blinded.length });
  assert.equal(balanceMinor, null, 'the vector has no balance');
  const blinded = V.issuance.inputs_hex.map((/** @type {string} */ input, /** @type {number} */ i) => ({
    input: bytes(input),
    blind: bytes(V.issuance.blinds_hex[i]),
    blinded: /** @type {Uint8Array} */ (fromB64url(request.blinded[i], 32)),
  }));
  const outputs = finalizeBatch(key.publicKey, blinded, evaluated, proof);
  assert.deepEqual(outputs.map((o) => Buffer.from(o).toString('hex')), V.issuance.outputs_hex);
  const tokens = outputs.map((output, i) => ({ epoch: request.epoch, input: toB64url(blinded[i].input), output: toB64url(output) }));
  assert.deepEqual(tokens, V.tokens);
});

test('a private payment takes the tokens the service counts', () => {
  const { request, tokens_needed: needed, paid_minor: paid } = V.private_payment;
  const price = tokensForPrice(request.amount_minor, V.key_document.keys[0].value_minor);
  assert.equal(price.count, needed);
  assert.equal(price.paidMinor, String(paid));
  assert.equal(BigInt(price.remainderMinor), BigInt(paid) - BigInt(request.amount_minor));
});
