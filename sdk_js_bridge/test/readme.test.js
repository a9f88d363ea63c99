// The README's snippets and API table must call the SDK the way it works: whatever returns a
// Promise is shown with `await` (a reader copying `KeySet.fromJwks(doc)` would get a Promise).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

import { KeySet } from '../index.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

test('every KeySet factory is async, and the README awaits it wherever it shows a call', () => {
  const factories = Object.getOwnPropertyNames(KeySet).filter((name) => typeof Reflect.get(KeySet, name) === 'function');
  assert.deepEqual(factories.sort(), ['fromJwks', 'fromUrl']);
  for (const name of factories) assert.equal(Reflect.get(KeySet, name).constructor.name, 'AsyncFunction', name);
  const calls = [...README.matchAll(/(\bawait\s+)?KeySet\.(\w+)\(/g)];
  assert.deepEqual(new Set(calls.map((call) => call[2])), new Set(factories), 'the README shows both factories');
  for (const call of calls) {
    assert.ok(call[1] !== undefined, `README shows ${JSON.stringify(call[0])} without await (it returns a Promise)`);
  }
});
