import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { RECEIPT_ERROR_CODES, ReceiptError } from '../index.js';

test('the error codes are exactly those of docs/receipts.md §3, in rule order', () => {
  const spec = readFileSync(new URL('../../docs/receipts.md', import.meta.url), 'utf8');
  const section = spec.slice(spec.indexOf('## 3. Verification'), spec.indexOf('## 4.'));
  const documented = [...section.matchAll(/^\| \d+ \|.*\| `([a-z_]+)`/gm)].map((match) => match[1]);
  assert.deepEqual([...RECEIPT_ERROR_CODES], documented);
});

test('README lists every code', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const code of RECEIPT_ERROR_CODES) assert.ok(readme.includes(`\`${code}\``), code);
});

test('ReceiptError carries its code and is an Error', () => {
  const error = new ReceiptError('expired', 'expected now <= exp + leeway');
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'ReceiptError');
  assert.equal(error.code, 'expired');
});
