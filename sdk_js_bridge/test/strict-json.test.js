import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { MAX_JSON_DEPTH, parseStrictJson } from '../strict-json.js';

test('parses RFC 8259 JSON like JSON.parse, with integers as bigint', () => {
  const text = ' {"a": [1, -2, 0.5, 1e3, true, false, null, "x\\u00e9\\n\\"\\\\\\/"], "b": {}, "c": [], "d": {"e": {"f": "g"}}} ';
  const value = parseStrictJson(text);
  assert.deepEqual(JSON.parse(JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? Number(v) : v))), JSON.parse(text));
  assert.equal(/** @type {any} */ (value).a[0], 1n);
  assert.equal(/** @type {any} */ (value).a[2], 0.5);
  assert.equal(parseStrictJson('9223372036854775807'), 9223372036854775807n);
  // -0 is not an integer of the profile (docs/receipts.md §2): it stays a number, -0.
  assert.ok(Object.is(parseStrictJson('-0'), -0));
  assert.equal(parseStrictJson('0'), 0n);
});

test('rejects duplicate member names at any depth, compared after unescaping', () => {
  for (const text of ['{"a":1,"a":1}', '{"a":1,"b":{"c":1,"c":2}}', '[{"x":1,"x":2}]', '{"a":1,"\\u0061":2}', '{"\\"":1,"\\u0022":2}']) {
    assert.throws(() => parseStrictJson(text), /unique member names/, text);
  }
});

test('is not fooled by member-like text inside strings, or equal names in sibling objects', () => {
  assert.deepEqual({ ...(/** @type {object} */ (parseStrictJson('{"a":"\\",\\"a\\":1","b":"a"}'))) }, { a: '","a":1', b: 'a' });
  assert.equal(Object.keys(/** @type {object} */ (parseStrictJson('{"a":{"x":1},"b":{"x":2},"c":[{"x":3},{"x":4}]}'))).length, 3);
});

test('keeps __proto__ as an ordinary member', () => {
  const value = /** @type {Record<string, unknown>} */ (parseStrictJson('{"__proto__":{"polluted":true}}'));
  assert.ok(Object.hasOwn(value, '__proto__'));
  assert.equal(/** @type {any} */ ({}).polluted, undefined);
});

test('rejects what JSON.parse rejects, and nothing else it accepts', () => {
  const bad = ['', ' ', '{', '{"a":1,}', '[1,]', "{'a':1}", '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{"a":NaN}',
    '{"a":"\u0001"}', '{"a":"\\x41"}', '{"a":"\\u12"}', '{"a" 1}', '{a:1}', '1 2', 'tru', '"abc', '{"a":1}x', '\ufeff{}', '{"a":-}', '[1 2]'];
  for (const text of bad) {
    assert.throws(() => JSON.parse(text), SyntaxError, `JSON.parse accepts ${JSON.stringify(text)}`);
    assert.throws(() => parseStrictJson(text), SyntaxError, JSON.stringify(text));
  }
});

test(`nests at most MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) levels, arrays and objects alike`, () => {
  const arrays = (/** @type {number} */ levels) => '['.repeat(levels) + ']'.repeat(levels);
  assert.ok(Array.isArray(parseStrictJson(arrays(MAX_JSON_DEPTH))));
  assert.throws(() => parseStrictJson(arrays(MAX_JSON_DEPTH + 1)), /JSON nested at most 32 levels deep/);
  assert.ok(parseStrictJson(`${'{"a":'.repeat(MAX_JSON_DEPTH)}1${'}'.repeat(MAX_JSON_DEPTH)}`));
  assert.throws(() => parseStrictJson(`${'{"a":['.repeat(17)}${']}'.repeat(17)}`), /nested at most/);
  // Siblings do not add up, and brackets inside strings are text.
  assert.ok(parseStrictJson(`[${Array(100).fill(arrays(MAX_JSON_DEPTH - 1)).join(',')}]`));
  assert.ok(parseStrictJson(`{"s":"${'['.repeat(1000)}"}`));
});

test('the nesting limit is the one docs/receipts.md states', () => {
  const spec = readFileSync(new URL('../../docs/receipts.md', import.meta.url), 'utf8');
  assert.ok(spec.includes(`**Nesting: at most ${MAX_JSON_DEPTH} levels.**`));
});

test('a very deep text is a SyntaxError, not a stack overflow', () => {
  for (const levels of [1000, 200000]) {
    assert.throws(() => parseStrictJson('['.repeat(levels) + ']'.repeat(levels)), SyntaxError);
  }
});

test('refuses lone surrogates, escaped or raw, and keeps escaped pairs', () => {
  for (const text of ['"\\ud800"', '"\\udc00"', '"\\udc00\\ud800"', '"\\ud800\\u0041"', '"\\ud800x"', '{"\\udfff":1}', '"\\\\\\ud800"', '"\ud800"', '"a\udc00"']) {
    assert.throws(() => parseStrictJson(text), /surrogate/, JSON.stringify(text));
  }
  assert.equal(parseStrictJson('"\\ud83d\\ude00"'), '\u{1f600}');
  assert.equal(parseStrictJson('"\u{1f600}"'), '\u{1f600}');
  assert.equal(parseStrictJson('"\\\\ud800"'), '\\ud800');
  assert.throws(() => parseStrictJson('"\\ud800\\u12"'), /four hex digits/);
});
