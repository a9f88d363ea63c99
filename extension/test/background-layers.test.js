// The background's modules import one another in one direction only: each imports only modules
// of the layers below its own, as docs/extension.md ("Layout") lists them. So there is no cycle,
// and a module can be read (and loaded in a test) with just the ones under it.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';

const DIR = new URL('../background/', import.meta.url);

/** The layers of docs/extension.md, bottom first: `a.js`, `b.js`; `c.js`; … */
function documentedLayers() {
  const doc = readFileSync(new URL('../../docs/extension.md', import.meta.url), 'utf8');
  const match = /layers below its own, from the bottom:\s*([\s\S]*?)\.\s+The socket/.exec(doc);
  assert.ok(match, 'docs/extension.md lists the background layers');
  return match[1].split(';').map((layer) => [...layer.matchAll(/`([a-z-]+\.js)`/g)].map((m) => m[1]));
}

/** @returns {Map<string, string[]>} each background module → the background modules it imports */
function importGraph() {
  /** @type {Map<string, string[]>} */
  const graph = new Map();
  for (const name of readdirSync(DIR).filter((n) => n.endsWith('.js'))) {
    const source = readFileSync(new URL(name, DIR), 'utf8');
    graph.set(name, [...source.matchAll(/^(?:import|export)\s[^;]*?from\s+'\.\/([^']+)'/gms)].map((m) => m[1]));
  }
  return graph;
}

test('every background module is in one documented layer', () => {
  const layers = documentedLayers().flat();
  assert.deepEqual([...layers].sort(), [...importGraph().keys()].sort());
  assert.equal(new Set(layers).size, layers.length);
});

test('a background module imports only modules of the layers below its own', () => {
  const rank = new Map(documentedLayers().flatMap((layer, i) => layer.map((name) => [name, i])));
  const graph = importGraph();
  assert.ok(graph.get('account.js')?.includes('streams.js'), 'the imports are read');
  for (const [name, imports] of graph) {
    for (const imported of imports) {
      assert.ok(
        /** @type {number} */ (rank.get(imported)) < /** @type {number} */ (rank.get(name)),
        `${name} imports ${imported}, which is not in a layer below it`,
      );
    }
  }
});
