import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { exactMoney, formatMoney } from '../shared/format.js';

/** @type {{locale: string, cases: {name: string, minor: string, scale: number, currency: string, text: string}[],
 *   exact: {name: string, minor: string, scale: number, currency: string, text: string}[]}} */
const VECTORS = JSON.parse(readFileSync(new URL('../../tests/vectors/amount-format.json', import.meta.url), 'utf8'));

test('every shared amount vector is written as the vector says (en-US)', () => {
  assert.ok(VECTORS.cases.length > 150);
  for (const c of VECTORS.cases) {
    assert.equal(formatMoney(c.minor, c, VECTORS.locale), c.text, c.name);
  }
});

test('the currency vectors are what Intl itself writes (so the Python table stays true)', () => {
  const known = new Set(Intl.supportedValuesOf('currency'));
  const cases = VECTORS.cases.filter((c) => c.name.startsWith('the currency '));
  assert.deepEqual(new Set(cases.map((c) => c.currency)), known, 'regenerate: node tests/vectors/generate_amount_format.mjs');
  for (const c of cases) {
    assert.equal(c.text, new Intl.NumberFormat('en-US', { style: 'currency', currency: c.currency }).format(1234), c.name);
  }
});

test('the exact value keeps every digit of the scale', () => {
  for (const c of VECTORS.exact) assert.equal(exactMoney(c.minor, c), c.text, c.name);
});

test('BigInt amounts and strings agree; the value is never a float', () => {
  const usd = { currency: 'USD', scale: 0 };
  assert.equal(formatMoney(2n ** 63n - 1n, usd, 'en-US'), '$9,223,372,036,854,775,807.00');
  assert.equal(formatMoney(9007199254740993n, usd, 'en-US'), '$9,007,199,254,740,993.00'); // 2^53 + 1
});

test('the locale decides symbol placement, grouping and the decimal separator', () => {
  const usd = { currency: 'USD', scale: 9 };
  assert.equal(formatMoney('1234004001000', usd, 'de-DE'), '1.234,004001\u00a0$');
  const euros = new Intl.NumberFormat('fr-FR', { style: 'currency', currency: 'EUR' }).format(5);
  assert.equal(formatMoney('5000000000', { currency: 'EUR', scale: 9 }, 'fr-FR'), euros);
  assert.equal(formatMoney('5000100000', { currency: 'EUR', scale: 9 }, 'fr-FR'), euros.replace('5,00', '5,0001'));
  assert.equal(formatMoney('1500000000', { currency: 'USDC', scale: 9 }, 'de-DE'), 'USDC\u00a01,50');
});

test('what is not an amount is refused', () => {
  for (const bad of ['', '1.5', '01', 'abc', '--1', '1e3']) {
    assert.throws(() => formatMoney(bad, { currency: 'USD', scale: 9 }), TypeError, bad);
  }
});
