import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseServerFrame } from '../background/protocol.js';

/** A frame that must hold exactly one usable message; null when it holds none. */
const parseServerMessage = (/** @type {string} */ text) => {
  const messages = parseServerFrame(text);
  assert.ok(messages.length <= 1);
  return messages[0] ?? null;
};

const money = { balance_minor: '4200000000', month_spent_minor: '150000000', month_budget_minor: '5000000000', currency: 'USD', scale: 9 };

test('server messages are read as the protocol documents them', () => {
  assert.deepEqual(parseServerMessage(JSON.stringify({ type: 'welcome', v: 1, interval_ms: 2000, limits: {}, ...money })), {
    type: 'welcome',
    interval: 2000,
    money: { currency: 'USD', scale: 9, balance: '4200000000', monthSpent: '150000000', monthBudget: '5000000000' },
  });
  assert.deepEqual(parseServerMessage('{"type":"started","ref":"r1","sid":"s1","origin":"https://a","pointer":"https://t/p/a"}'), { type: 'started', ref: 'r1', sid: 's1' });
  assert.deepEqual(parseServerMessage('{"type":"receipt","sid":"s","seq":3,"amt":"166667","tot":"500000","receipt":"e.y.j"}'), {
    type: 'receipt', sid: 's', seq: 3, amt: '166667', tot: '500000', receipt: 'e.y.j', resent: false,
  });
  assert.equal(/** @type {any} */ (parseServerMessage('{"type":"receipt","sid":"s","seq":3,"amt":"1","tot":"1","receipt":"x","resent":true}')).resent, true);
  assert.deepEqual(parseServerMessage('{"type":"error","code":"payee_not_found","message":"m","ref":"r"}'), { type: 'error', code: 'payee_not_found', message: 'm', ref: 'r', sid: null });
  assert.deepEqual(parseServerMessage('{"type":"stopped","sid":"s","reason":"stopped","seq":3,"tot":"5"}'), { type: 'stopped', sid: 's', seq: 3, tot: '5' });
});

test('amounts as numbers, bad JSON and unknown types are dropped', () => {
  assert.equal(parseServerMessage('{"type":"receipt","sid":"s","seq":3,"amt":166667,"tot":"500000","receipt":"x"}'), null);
  assert.equal(parseServerMessage(JSON.stringify({ type: 'balance', ...money, balance_minor: 1 })), null);
  assert.equal(parseServerMessage('{"type":"balance"}'), null);
  assert.equal(parseServerMessage('not json'), null);
  assert.equal(parseServerMessage('[]'), null);
  assert.equal(parseServerMessage('{"type":"future_thing"}'), null);
  assert.equal(parseServerMessage('{"type":"state","sid":"s"}'), null);
});

test('a batch frame gives its messages in order and drops only its unusable ones', () => {
  const receipt = (/** @type {number} */ seq) => ({ type: 'receipt', sid: 's', seq, amt: '1', tot: String(seq), receipt: 'e.y.j' });
  const frame = { type: 'batch', messages: [receipt(1), { type: 'future_thing' }, receipt(2), { type: 'balance', ...money }, 'junk', null] };
  const messages = parseServerFrame(JSON.stringify(frame));
  assert.deepEqual(messages.map((m) => m.type), ['receipt', 'receipt', 'balance']);
  assert.deepEqual(messages.map((m) => (m.type === 'receipt' ? m.seq : null)), [1, 2, null]);
  assert.deepEqual(parseServerFrame('{"type":"batch","messages":{"type":"pong"}}'), []);
  assert.deepEqual(parseServerFrame('{"type":"batch"}'), []);
  assert.deepEqual(parseServerFrame('[{"type":"pong"}]'), []);
});
