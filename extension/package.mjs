// Builds the store packages of the extension (`make extension`): dist/trickle-<version>-chromium.zip
// and dist/trickle-<version>-firefox.zip, and the same trees unpacked in dist/chromium/ and
// dist/firefox/ (what `web-ext lint` checks). Reproducible: the same sources give the same bytes
// (files in sorted order, one fixed timestamp and mode, deflate at a fixed level).
//
// The checked-in manifest serves both browsers unpacked (a service worker for Chromium, background
// scripts and a Gecko id for Firefox); each package keeps only its browser's keys, so that
// neither store sees a key it ignores.
//
//   node extension/package.mjs [--out DIR]
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync } from 'node:zlib';

const SOURCE = dirname(fileURLToPath(import.meta.url));
/** What ships: the runtime folders and the manifest (no tests, build scripts or notes). */
const SHIPPED = ['manifest.json', 'background', 'content', 'pages', 'shared', 'icons', 'vendor/noble-voprf.js'];
/** 1980-01-01 00:00, the earliest time a zip can hold: no build's clock in the package. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;

/** @param {string} path @returns {string[]} the files under path, relative to SOURCE, sorted */
function filesOf(path) {
  const full = join(SOURCE, path);
  if (statSync(full).isFile()) return [path];
  return readdirSync(full)
    .sort()
    .flatMap((name) => filesOf(join(path, name)));
}

/**
 * The manifest for one browser.
 * @param {'chromium' | 'firefox'} browser
 */
function manifestFor(browser) {
  const manifest = JSON.parse(readFileSync(join(SOURCE, 'manifest.json'), 'utf8'));
  if (browser === 'chromium') {
    delete manifest.background.scripts;
    delete manifest.browser_specific_settings;
  } else {
    delete manifest.background.service_worker;
    delete manifest.minimum_chrome_version;
  }
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/** @param {Uint8Array} bytes */
function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * A zip archive of `entries` (name → bytes), in the given order, deflated, with fixed times.
 * @param {[string, Buffer][]} entries
 */
function zip(entries) {
  /** @type {Buffer[]} */
  const parts = [];
  /** @type {Buffer[]} */
  const central = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const packed = deflateRawSync(data, { level: 9 });
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    parts.push(local, nameBytes, packed);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, 2.0
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0x0800, 8);
    entry.writeUInt16LE(8, 10);
    entry.writeUInt16LE(DOS_TIME, 12);
    entry.writeUInt16LE(DOS_DATE, 14);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(nameBytes.length, 28);
    entry.writeUInt32LE(((0o100644 << 16) >>> 0), 38); // a regular file, rw-r--r--
    entry.writeUInt32LE(offset, 42);
    central.push(entry, nameBytes);
    offset += local.length + nameBytes.length + packed.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, directory, end]);
}

/** @param {string} out */
export function build(out) {
  const version = JSON.parse(readFileSync(join(SOURCE, 'manifest.json'), 'utf8')).version;
  const files = SHIPPED.flatMap(filesOf);
  /** @type {Record<string, {zip: string, sha256: string, files: number}>} */
  const built = {};
  for (const browser of /** @type {const} */ (['chromium', 'firefox'])) {
    /** @type {[string, Buffer][]} */
    const entries = files.map((file) => {
      const name = file.split(sep).join('/');
      const data = name === 'manifest.json' ? Buffer.from(manifestFor(browser), 'utf8') : readFileSync(join(SOURCE, file));
      return [name, data];
    });
    const tree = join(out, browser);
    rmSync(tree, { recursive: true, force: true });
    for (const [name, data] of entries) {
      mkdirSync(dirname(join(tree, name)), { recursive: true });
      writeFileSync(join(tree, name), data);
    }
    const archive = zip(entries);
    const path = join(out, `trickle-${version}-${browser}.zip`);
    writeFileSync(path, archive);
    built[browser] = { zip: relative(process.cwd(), path), sha256: createHash('sha256').update(archive).digest('hex'), files: entries.length };
  }
  return built;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const at = process.argv.indexOf('--out');
  const out = at > 0 ? process.argv[at + 1] : join(SOURCE, '..', 'dist');
  mkdirSync(out, { recursive: true });
  for (const [browser, b] of Object.entries(build(out))) console.log(`${browser}: ${b.zip} (${b.files} files) sha256 ${b.sha256}`);
}
