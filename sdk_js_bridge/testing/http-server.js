/**
 * Test-only HTTP plumbing for the Node handler suites in ../test: serve a handler on an ephemeral
 * port of 127.0.0.1, and read the visitor session from a `session` cookie. Not part of the SDK's
 * public API.
 */

import { createServer } from 'node:http';

/**
 * A visitor's session id from a `Cookie: session=...` header, or null.
 * @param {import('node:http').IncomingMessage} req
 */
export function sessionOf(req) {
  const match = /(?:^|;\s*)session=([^;]+)/.exec(req.headers.cookie ?? '');
  return match === null ? null : match[1];
}

/**
 * Serve `handler` on 127.0.0.1:<ephemeral> until `close()`.
 * @param {(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => Promise<void>} handler
 * @param {string} [path]  the path of the returned `url`
 * @returns {Promise<{origin: string, url: string, close: () => Promise<void>}>}
 */
export async function serve(handler, path = '/') {
  const server = createServer((req, res) => void handler(req, res));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (server.address());
  const origin = `http://127.0.0.1:${address.port}`;
  return {
    origin,
    url: `${origin}${path}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve(undefined));
    }),
  };
}
