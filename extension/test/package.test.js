// `make extension`: the store packages are reproducible (same sources, same bytes, whatever the
// files' times) and each carries only its browser's manifest keys and the runtime files.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { inflateRawSync } from 'node:zlib';
import { build } from '../package.mjs';

/** The entries of a zip, read from its central directory. @param {Buffer} zip */
function entries(zip) {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  /** @type {Map<string, Buffer>} */
  const found = new Map();
  for (let i = 0; i < count; i++) {
    assert.equal(zip.readUInt32LE(at), 0x02014b50);
    const size = zip.readUInt32LE(at + 20);
    const nameLength = zip.readUInt16LE(at + 28);
    const extra = zip.readUInt16LE(at + 30) + zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    const dataAt = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    found.set(name, inflateRawSync(zip.subarray(dataAt, dataAt + size)));
    at += 46 + nameLength + extra;
  }
  return found;
}

const sha = (/** @type {string} */ path) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('two builds give the same bytes, whatever the times of the files', () => {
  const one = mkdtempSync(join(tmpdir(), 'trickle-pkg-'));
  const two = mkdtempSync(join(tmpdir(), 'trickle-pkg-'));
  try {
    const first = build(one);
    const popup = new URL('../pages/popup.js', import.meta.url);
    utimesSync(popup, new Date(2001, 0, 1), new Date(2001, 0, 1)); // another mtime
    const second = build(two);
    utimesSync(popup, new Date(), new Date());
    for (const browser of ['chromium', 'firefox']) {
      const name = `trickle-0.1.0-${browser}.zip`;
      assert.equal(sha(join(one, name)), sha(join(two, name)), browser);
      assert.equal(first[browser].sha256, second[browser].sha256);
    }
  } finally {
    rmSync(one, { recursive: true, force: true });
    rmSync(two, { recursive: true, force: true });
  }
});

test("each package has its browser's manifest and only the runtime files", () => {
  const out = mkdtempSync(join(tmpdir(), 'trickle-pkg-'));
  try {
    build(out);
    const chromium = entries(readFileSync(join(out, 'trickle-0.1.0-chromium.zip')));
    const firefox = entries(readFileSync(join(out, 'trickle-0.1.0-firefox.zip')));
    assert.deepEqual([...chromium.keys()], [...firefox.keys()]);
    const names = [...chromium.keys()];
    assert.ok(names.includes('background/service-worker.js') && names.includes('content/page-world.js'));
    assert.ok(names.includes('vendor/noble-voprf.js') && names.includes('shared/format.js'));
    for (const name of names) assert.doesNotMatch(name, /^test\/|\.md$|build\.mjs$|package\.mjs$|\.d\.ts$/, name);
    const source = JSON.parse(readFileSync(new URL('../manifest.json', import.meta.url), 'utf8'));
    const c = JSON.parse(String(chromium.get('manifest.json')));
    const f = JSON.parse(String(firefox.get('manifest.json')));
    assert.deepEqual(c.background, { service_worker: source.background.service_worker, type: 'module' });
    assert.equal(c.browser_specific_settings, undefined);
    assert.deepEqual(f.background, { type: 'module', scripts: source.background.scripts });
    assert.equal(f.minimum_chrome_version, undefined);
    assert.equal(f.browser_specific_settings.gecko.id, 'trickle@trickle.invalid');
    // Every other file is the source's, byte for byte.
    assert.deepEqual(chromium.get('pages/popup.js'), readFileSync(new URL('../pages/popup.js', import.meta.url)));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
