/**
 * What the page bridge's parts (bridge.js, bridge-forwarding.js, bridge-payments.js) share: the
 * window they run in, the rules of amounts and binding values, listener sets, and the one way
 * they POST to the site's own server. Browser-only code that imports nothing.
 */

/**
 * The parts of `window` the bridge uses; `globalThis` in a browser.
 * @typedef {object} BridgeWindow
 * @property {BridgeDocument} document
 * @property {unknown} [MonetizationEvent]
 * @property {new (callback: () => void) => {observe(target: unknown, options: object): void, disconnect(): void}} [MutationObserver]
 * @property {(input: string, init: object) => Promise<{ok: boolean, status: number, json(): Promise<unknown>}>} [fetch]
 * @property {(callback: () => void, ms: number) => unknown} setTimeout
 * @property {(handle: any) => void} clearTimeout
 * @property {{getItem(key: string): string | null, setItem(key: string, value: string): void, removeItem(key: string): void} | null} [sessionStorage]
 * @property {(type: string, listener: (event: any) => void) => void} [addEventListener]
 * @property {(type: string, listener: (event: any) => void) => void} [removeEventListener]
 * @property {{origin: string, href: string}} [location]
 * @property {(message: unknown, targetOrigin: string) => void} [postMessage]
 * @property {{getRandomValues<T extends Uint8Array>(array: T): T}} [crypto]
 */

/**
 * @typedef {object} BridgeDocument
 * @property {(type: string, listener: (event: any) => void, capture?: boolean) => void} addEventListener
 * @property {(type: string, listener: (event: any) => void, capture?: boolean) => void} removeEventListener
 * @property {(selector: string) => ArrayLike<BridgeLink>} querySelectorAll
 * @property {(name: string) => {relList?: {supports?(token: string): boolean}}} createElement
 * @property {unknown} [documentElement]
 * @property {string} [visibilityState]
 */

/**
 * @typedef {object} BridgeLink
 * @property {(name: string) => string | null} getAttribute
 * @property {(name: string, value: string) => void} setAttribute
 * @property {(name: string) => void} removeAttribute
 */

/** A count of minor units as the wire carries it: a decimal string without sign or leading zeros. */
export const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)$/;
/** The attribute of a monetization link the extension reads the binding value from. */
export const BINDING_ATTRIBUTE = 'data-trickle-binding';
/** A binding value: 1–256 printable ASCII characters (docs/receipts.md, `bnd`). */
export const BINDING_PATTERN = /^[\x20-\x7e]{1,256}$/;

/**
 * @template T
 * @param {Set<T>} listeners
 * @param {T} callback
 * @returns {() => void}
 */
export function subscribe(listeners, callback) {
  if (typeof callback !== 'function') throw new TypeError('expected a callback function');
  listeners.add(callback);
  return () => {
    listeners.delete(callback);
  };
}

/**
 * Call every listener; one that throws does not stop the others nor the bridge.
 * @template T
 * @param {Set<T>} listeners
 * @param {(listener: T) => void} call
 */
export function notify(listeners, call) {
  for (const listener of [...listeners]) {
    try {
      call(listener);
    } catch (error) {
      const report = /** @type {any} */ (globalThis).reportError;
      if (typeof report === 'function') report(error);
      else console.error(error);
    }
  }
}

/**
 * POST `payload` as JSON to the site's own server (same origin, with its cookies) and read the
 * answer's JSON body (null when it has none). A network failure or an abort throws, as fetch does.
 * @param {BridgeWindow} win
 * @param {string} url
 * @param {unknown} payload
 * @param {{signal: AbortSignal | undefined, keepalive?: boolean}} options  keepalive is sent only when given
 * @returns {Promise<{ok: boolean, status: number, body: unknown}>}
 */
export async function postJson(win, url, payload, { signal, keepalive }) {
  const fetchFn = win.fetch;
  if (typeof fetchFn !== 'function') throw new Error('fetch is not available');
  const response = await fetchFn.call(win, url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(payload),
    credentials: 'same-origin',
    ...(keepalive === undefined ? {} : { keepalive }),
    signal,
  });
  /** @type {unknown} */
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { ok: response.ok, status: response.status, body };
}
