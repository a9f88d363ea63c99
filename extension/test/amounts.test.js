import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AmountError, addMinor, formatMinor, isMinor, majorToMinor, minorToDecimal } from '../shared/amounts.js';

test('minorToDecimal writes exactly scale fraction digits', () => {
  assert.equal(minorToDecimal('2000', 9), '0.000002000');
  assert.equal(minorToDecimal('0', 9), '0.000000000');
  assert.equal(minorToDecimal('4990000000', 9), '4.990000000');
  assert.equal(minorToDecimal(123456789012345678n, 9), '123456789.012345678');
  assert.equal(minorToDecimal('499', 2), '4.99');
  assert.equal(minorToDecimal('7', 0), '7');
});

test('minorToDecimal is exact where floats are not', () => {
  // 2^63 - 1 minor units: a float would round this.
  assert.equal(minorToDecimal('9223372036854775807', 9), '9223372036.854775807');
});

test('minorToDecimal refuses what is not a minor amount', () => {
  for (const bad of ['', '-1', '01', '1.5', '1e3', ' 1', 'abc']) {
    assert.throws(() => minorToDecimal(bad, 9), AmountError, bad);
  }
  assert.throws(() => minorToDecimal('1', -1), AmountError);
  assert.throws(() => minorToDecimal('1', 1.5), AmountError);
});

test('formatMinor trims trailing zeros but keeps two decimals, never rounds', () => {
  assert.equal(formatMinor('4990000000', 9), '4.99');
  assert.equal(formatMinor('5000000000', 9), '5.00');
  assert.equal(formatMinor('4999998000', 9), '4.999998');
  assert.equal(formatMinor('1', 9), '0.000000001');
  assert.equal(formatMinor('5', 0), '5');
  assert.equal(formatMinor('50', 1), '5.0');
});

test('majorToMinor converts typed amounts by string arithmetic', () => {
  assert.equal(majorToMinor('0.60', 9), '600000000');
  assert.equal(majorToMinor('1', 9), '1000000000');
  assert.equal(majorToMinor('.5', 9), '500000000');
  assert.equal(majorToMinor('1.', 2), '100');
  assert.equal(majorToMinor(' 1.20 ', 9), '1200000000');
  assert.equal(majorToMinor('0.000000001', 9), '1');
  assert.equal(majorToMinor('0', 9), '0');
  assert.equal(majorToMinor('0.29', 2), '29'); // 0.29 * 100 is 28.999999999999996 in floats
});

test('majorToMinor refuses signs, exponents, too many decimals and huge amounts', () => {
  for (const bad of ['', '.', '-1', '+1', '1e3', '1,5', '0.0000000001', 'abc', '1.2.3', 'Infinity']) {
    assert.throws(() => majorToMinor(bad, 9), AmountError, bad);
  }
  assert.throws(() => majorToMinor('9223372037', 9), AmountError);
  assert.equal(majorToMinor('9223372036.854775807', 9), '9223372036854775807');
});

test('isMinor matches the service amount form', () => {
  assert.ok(isMinor('0'));
  assert.ok(isMinor('9223372036854775807'));
  assert.ok(!isMinor('9223372036854775808'));
  assert.ok(!isMinor('01'));
  assert.ok(!isMinor(1));
});

test('addMinor adds exactly', () => {
  assert.equal(addMinor('9007199254740993', '1'), '9007199254740994');
  assert.equal(addMinor('0', 5n, '10'), '15');
});
