// The service's HTTP API (docs/api.md), called only from the background with the bearer token.
// A token goes only to the origin that issued it: callApi checks the origin of every URL it
// sends a token to, and follows no redirect (a 307 would re-send the request elsewhere).

import { httpOrigin } from '../shared/links.js';

export class ApiError extends Error {
  /**
   * @param {string} code  the service's error code, or service_unreachable / bad_response
   * @param {string} message
   * @param {number} status  the HTTP status, 0 when no answer came
   * @param {Record<string, unknown> | null} [details]  values for the reader's sentence
   */
  constructor(code, message, status, details = null) {
    super(message);
    this.name = 'ApiError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

/**
 * The field a `validation_failed` message names first ("password: …"), so that the reader's
 * sentence can say what to change; null when the message names none.
 * @param {string} message
 */
export function fieldOf(message) {
  const match = /^([a-z_][a-z0-9_]{0,40})(?:\.[A-Za-z0-9_.]*)?: /.exec(message);
  return match ? match[1] : null;
}

/**
 * The position of the token a refusal names ("token 3: …", "tokens[3]: …"), or null.
 * @param {string} message
 */
export function tokenIndexOf(message) {
  const match = /^tokens?(?:\[| )(\d{1,5})\]?: /.exec(message);
  return match ? Number(match[1]) : null;
}

/**
 * A session token and the origin of the service that issued it: the token is valid there only.
 * @typedef {{token: string, origin: string}} Auth
 */

/**
 * @typedef {object} CallOptions
 * @property {string} [method]
 * @property {Auth | null} [auth]  sent as a Bearer token, only if the URL's origin is auth.origin
 * @property {unknown} [body]
 * @property {string} [idempotencyKey]
 */

/**
 * Call the API; resolve with the JSON body, or reject with an ApiError carrying the service's code.
 * @param {string} base  the service's base URL, without a trailing slash
 * @param {string} path  "/api/v1/..."
 * @param {CallOptions} [options]
 * @returns {Promise<any>}
 */
export async function callApi(base, path, options = {}) {
  const url = `${base}${path}`;
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  if (options.auth) {
    if (httpOrigin(url) !== options.auth.origin) {
      throw new ApiError('session_origin_mismatch', `The session belongs to ${options.auth.origin}, not to ${httpOrigin(url) ?? base}.`, 0);
    }
    headers.Authorization = `Bearer ${options.auth.token}`;
  }
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  if (options.idempotencyKey) headers['Idempotency-Key'] = options.idempotencyKey;
  /** @type {Response} */
  let response;
  try {
    response = await fetch(url, {
      method: options.method ?? 'GET',
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'manual',
      signal: AbortSignal.timeout(15_000),
    });
  } catch {
    throw new ApiError('service_unreachable', `The Trickle service at ${base} cannot be reached.`, 0);
  }
  // Browsers give a redirect as an opaque response (status 0); Node as the 3xx itself.
  if (response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)) {
    throw new ApiError('bad_response', 'The service answered with a redirect, which the extension does not follow.', response.status);
  }
  /** @type {any} */
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data && typeof data === 'object' ? data.error : null;
    if (error && typeof error.code === 'string') {
      const message = typeof error.message === 'string' ? error.message : error.code;
      const field = error.code === 'validation_failed' ? fieldOf(message) : null;
      // A refused token or blinded element: its position, when the service names it.
      const index = Number.isSafeInteger(error.index) ? error.index : tokenIndexOf(message);
      /** @type {Record<string, unknown> | null} */
      let details = field ? { field } : null;
      if (index !== null) details = { ...details, index };
      throw new ApiError(error.code, message, response.status, details);
    }
    throw new ApiError('bad_response', `The service answered HTTP ${response.status}.`, response.status);
  }
  if (data === null || typeof data !== 'object') {
    throw new ApiError('bad_response', 'The service answered something that is not JSON.', response.status);
  }
  return data;
}

