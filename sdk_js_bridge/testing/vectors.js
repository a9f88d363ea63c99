/**
 * Loads the shared receipt test vectors (tests/vectors/receipts.json, format in
 * tests/vectors/README.md) for the JS suites and the benchmark. Not part of the SDK's public API.
 */

import { readFileSync } from 'node:fs';

export const VECTORS_URL = new URL('../../tests/vectors/receipts.json', import.meta.url);

/**
 * @typedef {object} VectorFile
 * @property {{issuer: string, audience: string, payees: string[], now: number, leeway_s: number}} verifier
 * @property {{keys: object[]}} jwks
 * @property {{name: string, token: string, binding: string | null, now: number | null, claims: Record<string, unknown>}[]} valid
 * @property {{name: string, token: string, binding: string | null, now: number | null, code: string}[]} invalid
 * @property {{name: string, steps: {token: string, credited: string}[]}[]} credit
 * @property {{name: string, configured: string, origin: string | null, token: string | null}[]} origins
 */

/**
 * @returns {VectorFile}
 * @throws {Error} when the file is missing or not JSON
 */
export function loadVectors() {
  return JSON.parse(readFileSync(VECTORS_URL, 'utf8'));
}
