// Which <link rel="monetization"> elements count, and which one a page pays.
// The content script reports every candidate link as it is in the DOM; the background applies
// these rules (it never trusts what a page wrote).

/** The longest pointer the service takes. */
export const MAX_POINTER_LENGTH = 300;
const BINDING = /^[\x20-\x7e]{1,256}$/;

/**
 * @typedef {object} LinkReport  a link as the content script saw it
 * @property {string} id  the content script's name for the element
 * @property {string} href  the resolved href (link.href)
 * @property {string | null} binding  the raw data-trickle-binding attribute
 */
/**
 * @typedef {object} ChosenLink
 * @property {string} id
 * @property {string} pointer
 * @property {string | null} binding
 */

/**
 * Whether a rel attribute value holds the `monetization` keyword (ASCII case-insensitive,
 * space-separated tokens, as HTML defines rel).
 * @param {string | null | undefined} rel
 */
export function isMonetizationRel(rel) {
  if (!rel) return false;
  return rel.toLowerCase().split(/[\t\n\f\r ]+/).includes('monetization');
}

/**
 * A link's href as a payment pointer, or null when it is not a usable URL: it must parse as an
 * absolute http(s) URL with a host, without user or password, at most 300 characters.
 * @param {unknown} href
 * @returns {string | null}
 */
export function validPointer(href) {
  if (typeof href !== 'string' || href.length === 0 || href.length > MAX_POINTER_LENGTH) return null;
  /** @type {URL} */
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (!url.hostname || url.username || url.password) return null;
  if (url.href.length > MAX_POINTER_LENGTH) return null;
  return url.href;
}

/**
 * The binding value to pass to the service, or null: 1–256 printable ASCII characters, else
 * ignored (the link is still paid, without a binding).
 * @param {unknown} value
 * @returns {string | null}
 */
export function validBinding(value) {
  return typeof value === 'string' && BINDING.test(value) ? value : null;
}

/**
 * The link a page pays: the first link in document order whose href is a valid pointer and
 * whose pointer the service did not refuse. One page (document) pays one link at a time, so a
 * page with many links never pays more than a page with one.
 * @param {readonly LinkReport[]} links  in document order
 * @param {ReadonlySet<string>} [refused]  pointers the service answered payee_not_found for
 * @returns {ChosenLink | null}
 */
export function chooseLink(links, refused = new Set()) {
  for (const link of links) {
    const pointer = validPointer(link.href);
    if (pointer === null || refused.has(pointer)) continue;
    return { id: link.id, pointer, binding: validBinding(link.binding) };
  }
  return null;
}

/**
 * Whether an iframe's `allow` attribute (a permissions-policy list) lets the frame monetize:
 * some directive is named `monetization` and its allowlist is not `'none'`.
 * @param {string | null | undefined} allow
 */
export function allowsMonetization(allow) {
  if (!allow) return false;
  for (const directive of allow.split(';')) {
    const tokens = directive.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0 || tokens[0].toLowerCase() !== 'monetization') continue;
    if (tokens.slice(1).some((t) => t.toLowerCase() === "'none'")) return false;
    return true;
  }
  return false;
}

/**
 * The origin (scheme://host[:port]) of an http(s) URL, or null.
 * @param {unknown} url
 * @returns {string | null}
 */
export function httpOrigin(url) {
  if (typeof url !== 'string') return null;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return null;
    return parsed.origin;
  } catch {
    return null;
  }
}

/** A service URL the extension cannot use; `details.reason` says why (shared/sentences.js). */
export class ServiceUrlError extends TypeError {
  /** @param {string} message @param {'not_a_url' | 'not_http' | 'credentials'} reason */
  constructor(message, reason) {
    super(message);
    this.name = 'ServiceUrlError';
    this.code = 'invalid_service_url';
    this.details = { reason };
  }
}

/**
 * The service's base URL as stored in options, normalized (no trailing slash, no query or
 * fragment), its stream socket URL, and the anonymous socket's of private spending. Throws on
 * anything but an http(s) URL.
 * @param {string} text
 * @returns {{base: string, stream: string, privateStream: string}}
 */
export function serviceUrls(text) {
  /** @type {URL} */
  let url;
  try {
    url = new URL(String(text).trim());
  } catch {
    throw new ServiceUrlError('the service URL is not a URL', 'not_a_url');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new ServiceUrlError('the service URL must be http(s)', 'not_http');
  if (url.username || url.password) throw new ServiceUrlError('the service URL must not carry a user or password', 'credentials');
  url.search = '';
  url.hash = '';
  const base = url.href.replace(/\/+$/, '');
  const ws = `${url.protocol === 'https:' ? 'wss:' : 'ws:'}${base.slice(url.protocol.length)}`;
  return { base, stream: `${ws}/api/v1/stream`, privateStream: `${ws}/api/v1/private-stream` };
}
