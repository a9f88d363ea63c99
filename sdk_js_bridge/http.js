/**
 * The plumbing shared by the Node site helpers (server.js, purchases.js): the common part of their
 * JSON POST endpoints (a bounded body reader, JSON answers in the service's error shape), the
 * visitor-session check and the verifier made from their options. Only `node:http` types, no
 * runtime imports from Node.
 */

import { createVerifier } from './verifier.js';

/**
 * The media type of a request, lower-cased, without parameters ("" when there is none).
 * @param {import('node:http').IncomingMessage} req
 * @returns {string}
 */
export function mediaTypeOf(req) {
  return String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
}

/**
 * The body, or null when it is larger than `limit` (the rest is then drained and discarded).
 * @param {import('node:http').IncomingMessage} req
 * @param {number} limit
 * @returns {Promise<Uint8Array | null>}
 */
export async function readBody(req, limit) {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return null;
  }
  /** @type {Uint8Array[]} */
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) {
      req.resume();
      return null;
    }
    chunks.push(chunk);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {unknown} value
 */
export function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-store',
    'Content-Length': new TextEncoder().encode(text).length,
  });
  res.end(text);
}

/**
 * @param {import('node:http').ServerResponse} res
 * @param {number} status
 * @param {string} code
 * @param {string} message
 */
export function sendError(res, status, code, message) {
  sendJson(res, status, { error: { code, message } });
}

/**
 * @typedef {object} JsonPostOptions
 * @property {(req: import('node:http').IncomingMessage) => string | null | undefined | Promise<string | null | undefined>} sessionOf
 * @property {number} maxBodyBytes
 * @property {(value: unknown) => string | null} validate  what is wrong with the parsed body, or null
 * @property {(error: unknown) => void} onError
 * @property {string} failure  the `internal_error` message
 */

/**
 * The common part of the site endpoints: checks, in the order of the Python helper, the method
 * (POST), the media type (JSON), the visitor session, then the body (at most `maxBodyBytes`, UTF-8
 * JSON, `validate`d), and sends what `answer(session, body)` returns. Whatever throws is told to
 * `onError`; the client gets `internal_error` with the `failure` message, never the details.
 * @param {import('node:http').IncomingMessage} req
 * @param {import('node:http').ServerResponse} res
 * @param {JsonPostOptions} options
 * @param {(session: string, body: any) => Promise<{status: number, value: unknown}>} answer
 *   `body` is what `validate` accepted
 */
export async function handleJsonPost(req, res, { sessionOf, maxBodyBytes, validate, onError, failure }, answer) {
  try {
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return sendError(res, 405, 'method_not_allowed', `expected POST, got ${req.method}`);
    }
    const mediaType = mediaTypeOf(req);
    if (mediaType !== 'application/json') {
      return sendError(res, 415, 'unsupported_media_type', `expected Content-Type application/json, got ${JSON.stringify(mediaType)}`);
    }
    const session = await sessionOf(req);
    if (typeof session !== 'string' || session === '') {
      req.resume();
      return sendError(res, 401, 'unauthenticated', 'no visitor session for this request');
    }
    const body = await readBody(req, maxBodyBytes);
    if (body === null) {
      res.setHeader('Connection', 'close');
      return sendError(res, 413, 'body_too_large', `expected at most ${maxBodyBytes} bytes`);
    }
    /** @type {unknown} */
    let parsed;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
    } catch {
      return sendError(res, 400, 'malformed_json', 'the body is not UTF-8 JSON');
    }
    const problem = validate(parsed);
    if (problem !== null) return sendError(res, 422, 'validation_failed', problem);
    const { status, value } = await answer(session, parsed);
    return sendJson(res, status, value);
  } catch (error) {
    onError(error);
    if (!res.headersSent) sendError(res, 500, 'internal_error', failure);
    else res.destroy();
  }
}

/**
 * Throws a `TypeError` unless `session` is a visitor session id (a non-empty string).
 * @param {unknown} session
 */
export function requireSession(session) {
  if (typeof session !== 'string' || session === '') {
    throw new TypeError(`expected a visitor session id (a non-empty string), got ${JSON.stringify(session)}`);
  }
}

/**
 * @typedef {object} SiteVerifierOptions
 * @property {import('./verifier.js').Verifier} [verifier]
 * @property {import('./keys.js').KeySet} [keys]
 * @property {string} [issuer]
 * @property {string} [origin]
 * @property {string[]} [payees]
 * @property {number} [leewayS]
 */

/**
 * The handler's verifier: `options.verifier`, or one made from its `keys`, `issuer`, `origin` (the
 * receipts' audience), `payees` and `leewayS`, on the handler's `clock`.
 * @param {SiteVerifierOptions} options
 * @param {() => number} clock
 * @returns {import('./verifier.js').Verifier}
 */
export function siteVerifier(options, clock) {
  return options.verifier ?? createVerifier({
    issuer: /** @type {string} */ (options.issuer),
    audience: /** @type {string} */ (options.origin),
    payees: /** @type {string[]} */ (options.payees),
    keys: /** @type {import('./keys.js').KeySet} */ (options.keys),
    leewayS: options.leewayS,
    clock,
  });
}
