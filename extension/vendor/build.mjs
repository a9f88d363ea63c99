// Writes extension/vendor/noble-voprf.js: @noble/curves' RFC 9497 OPRF for ristretto255 (with the
// @noble/hashes it imports) as one ES module the extension loads as is, because a service worker
// cannot resolve the packages' bare imports and the extension has no build step. It bundles only
// what `npm ci` installed, after checking those bytes against the pins below, so a changed lock
// file or a tampered node_modules stops the build instead of reaching the extension.
//
//   node extension/vendor/build.mjs [--out DIR]     (default DIR: extension/vendor)
//
// How to update: extension/vendor/README.md.

import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
export const REPO = join(HERE, '..', '..');
export const BUNDLE_NAME = 'noble-voprf.js';

/**
 * What the bundle is made of. `integrity` is the registry tarball's hash as package-lock.json
 * records it (and `npm ci` checks it); `files` is the installed package folder's content hash:
 * `(cd node_modules/PKG && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha512sum) |
 * sha512sum`. esbuild is pinned by version: its output is the bundle.
 * @type {Readonly<Record<string, {version: string, integrity: string, files?: string}>>}
 */
export const PINS = Object.freeze({
  '@noble/curves': {
    version: '2.4.0',
    integrity:
      'sha512-P4/62zrgfH33CneE3Dn4WhJVA22YUU0eR51wKIan4NVRvwsA0YnPTwWGpNbpuacSujmSFLvyzpyuR30+fbq2Ew==',
    files:
      '7c19513781806cfec39969ff0e8c96beadf1a5ec14fe444fb41eb2353ec5d702c08e7129e0e0d9ec1559434f84a9f7f927ec88b09d6cd578451cc3a34e72a986',
  },
  '@noble/hashes': {
    version: '2.4.0',
    integrity:
      'sha512-X5XaVWZIBCT7HHZGm5I7ZQXDwLG+bGXuSrMQAW+7Zvl87h1kmc1ZB1VSRJcpUfoUrGQp4Fkoxm5kZ+Ms+aW+eA==',
    files:
      '6666b7ed539d4c4637955ab2eb4447a377bec16d6b3d6a42b759f35d378e2b5efeccb6a686087be671bab4c1808835249e70113cc4cb1d109d2c7703981b00cb',
  },
  esbuild: {
    version: '0.28.2',
    integrity:
      'sha512-HKVLS8dvII+xoKW9kmqxbRKrnWEXfJJr/FZhhJmiqIB0e053QNYFqOBouTMO/k5sID4MvCiUCvv8b9M4h32wIA==',
  },
});

/** The names the extension uses; everything else in the packages is left out of the bundle. */
const ENTRY = "export { ristretto255, ristretto255_oprf } from '@noble/curves/ed25519.js';\n";

/**
 * Every regular file under `dir`, as `./relative/path` with `/` separators.
 * @param {string} dir
 * @returns {string[]}
 */
function listFiles(dir) {
  /** @type {string[]} */
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      files.push('./' + relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/'));
    } else if (!entry.isDirectory()) {
      throw new Error(`${dir}: ${entry.name} is neither a file nor a folder`);
    }
  }
  // LC_ALL=C sort: byte order; the paths are ASCII, where UTF-16 order is the same.
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The content hash of an installed package folder (see PINS).
 * @param {string} dir
 * @returns {string}
 */
export function folderHash(dir) {
  const lines = listFiles(dir).map((path) => {
    const digest = createHash('sha512').update(readFileSync(join(dir, path))).digest('hex');
    return `${digest}  ${path}\n`;
  });
  return createHash('sha512').update(lines.join('')).digest('hex');
}

/**
 * Checks what `npm ci` installed against PINS; throws on any difference.
 * @returns {Record<string, string>} each pinned package's LICENSE text
 */
export function checkInstalled() {
  const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8'));
  /** @type {Record<string, string>} */
  const licenses = {};
  for (const [name, pin] of Object.entries(PINS)) {
    const dir = join(REPO, 'node_modules', ...name.split('/'));
    const installed = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
    const locked = lock.packages?.[`node_modules/${name}`];
    if (installed !== pin.version || locked?.version !== pin.version) {
      throw new Error(
        `${name}: pinned ${pin.version}, locked ${locked?.version}, installed ${installed}`,
      );
    }
    if (locked.integrity !== pin.integrity) {
      throw new Error(`${name}: package-lock.json integrity ${locked.integrity} is not the pin`);
    }
    if (pin.files !== undefined) {
      const files = folderHash(dir);
      if (files !== pin.files) {
        throw new Error(`${name}: installed files hash ${files}, pinned ${pin.files}`);
      }
      licenses[name] = readFileSync(join(dir, 'LICENSE'), 'utf8');
    }
  }
  if (esbuild.version !== PINS.esbuild.version) {
    throw new Error(`esbuild ${esbuild.version} runs, ${PINS.esbuild.version} is pinned`);
  }
  return licenses;
}

/**
 * Builds the bundle's text.
 * @returns {Promise<string>}
 */
export async function buildBundle() {
  const licenses = checkInstalled();
  const result = await esbuild.build({
    stdin: { contents: ENTRY, resolveDir: REPO, sourcefile: 'noble-voprf-entry.js' },
    absWorkingDir: REPO,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    charset: 'utf8',
    legalComments: 'inline',
    write: false,
    logLevel: 'silent',
  });
  const [output] = result.outputFiles;
  const versions = Object.entries(PINS)
    .map(([name, pin]) => `${name} ${pin.version}`)
    .join(', ');
  const header = [
    `// GENERATED by extension/vendor/build.mjs from ${versions}.`,
    "// Do not edit; see extension/vendor/README.md. The packages' licenses follow.",
    ...Object.entries(licenses).map(
      ([name, text]) => `/*\n${name} LICENSE:\n\n${text.trim().replaceAll('*/', '* /')}\n*/`,
    ),
    '',
  ].join('\n');
  return header + output.text;
}

/**
 * @param {string[]} argv
 */
async function main(argv) {
  const at = argv.indexOf('--out');
  const out = at >= 0 ? argv[at + 1] : HERE;
  if (!out) throw new Error('usage: node extension/vendor/build.mjs [--out DIR]');
  const bytes = Buffer.from(await buildBundle(), 'utf8');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, BUNDLE_NAME), bytes);
  const digest = createHash('sha256').update(bytes).digest('hex');
  process.stdout.write(`${join(out, BUNDLE_NAME)}: ${bytes.length} bytes, sha256 ${digest}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`build.mjs: ${error instanceof Error ? error.message : error}\n`);
    process.exit(1);
  });
}
