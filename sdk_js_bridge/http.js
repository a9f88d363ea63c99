/**
 * The `node:http` plumbing shared by the Node site helpers (server.js, purchases.js): a bounded body
 * reader and JSON answers in the service's error shape. Only `node:http` types, no runtime imports.
 */

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
