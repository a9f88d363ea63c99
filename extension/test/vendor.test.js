// extension/vendor/noble-voprf.js is what build.mjs makes from the pinned packages, byte for byte,
// and it holds no code path the extension does not expect from a math library.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BUNDLE_NAME, PINS } from '../vendor/build.mjs';

const VENDOR = fileURLToPath(new URL('../vendor/', import.meta.url));
const BUILD = join(VENDOR, 'build.mjs');
const COMMITTED = readFileSync(join(VENDOR, BUNDLE_NAME));
const TEXT = COMMITTED.toString('utf8');
const README = readFileSync(join(VENDOR, 'README.md'), 'utf8');

test('a fresh build from the pinned, checked packages is byte-identical to the committed file', () => {
  const out = mkdtempSync(join(tmpdir(), 'trickle-vendor-'));
  try {
    execFileSync(process.execPath, [BUILD, '--out', out], { stdio: 'pipe' });
    const fresh = readFileSync(join(out, BUNDLE_NAME));
    assert.ok(fresh.equals(COMMITTED), 'run `node extension/vendor/build.mjs` and commit the result');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('the README states the pins and the bundle hash', () => {
  for (const [name, pin] of Object.entries(PINS)) {
    assert.ok(README.includes(`${name}\` ${pin.version}`), `${name} ${pin.version} in README`);
    assert.ok(README.includes(pin.integrity), `${name} integrity in README`);
    if (pin.files) assert.ok(README.includes(pin.files), `${name} files hash in README`);
  }
  const digest = createHash('sha256').update(COMMITTED).digest('hex');
  assert.ok(README.includes(digest), `README names the bundle's sha256 ${digest}`);
});

test('the bundle keeps both licenses and the packages\' own license headers', () => {
  assert.match(TEXT, /@noble\/curves LICENSE:\n\nThe MIT License \(MIT\)/);
  assert.match(TEXT, /@noble\/hashes LICENSE:\n\nThe MIT License \(MIT\)/);
  assert.match(TEXT, /noble-curves - MIT License \(c\) 2022 Paul Miller/);
});

test('the bundle is one self-contained module exporting exactly what the wrapper uses', () => {
  assert.doesNotMatch(TEXT, /^\s*import\s/m, 'no import statements');
  const exports = [...TEXT.matchAll(/^export\s*\{([^}]*)\}/gm)];
  assert.equal(exports.length, 1);
  assert.deepEqual(
    exports[0][1].split(',').map((name) => name.trim()).filter(Boolean),
    ['ristretto255', 'ristretto255_oprf'],
  );
});

test('no network, storage, messaging or dynamic-code path in the bundle', () => {
  const forbidden = [
    /\bfetch\s*\(/,
    /XMLHttpRequest/,
    /WebSocket/,
    /EventSource/,
    /sendBeacon/,
    /importScripts/,
    /\beval\s*\(/,
    /\bFunction\s*\(/,
    /\bimport\s*\(/,
    /\brequire\s*\(/,
    /\bprocess\./,
    /\bchrome\./,
    /\bbrowser\./,
    /localStorage|sessionStorage|indexedDB|document\.cookie/,
    /postMessage|BroadcastChannel|MessageChannel/,
    /\bsetTimeout\b|\bsetInterval\b/,
    /\bwindow\.\w/,
    /\bself\.\w/,
    /\bnavigator\b/,
    /\bWorker\b/,
  ];
  for (const pattern of forbidden) assert.doesNotMatch(TEXT, pattern);
  // The one global it reaches for: the platform's CSPRNG.
  const globals = [...TEXT.matchAll(/globalThis(\.\w+)?/g)].map((m) => m[0]);
  assert.deepEqual([...new Set(globals)].sort(), ['globalThis', 'globalThis.crypto']);
  assert.match(TEXT, /\.getRandomValues\(/);
});
