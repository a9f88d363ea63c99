// Fakes of the browser APIs the background uses (chrome.storage/tabs/windows/runtime/action and
// WebSocket), installed as globals when this module is imported: import it before the
// background's modules. Each test file brings its own fake of the service's HTTP API (fetch).

/** @type {Record<string, Record<string, unknown>>} what chrome.storage holds, per area */
export const areas = { session: {}, local: {} };
/** @type {{tabId: number, msg: any, opts: any}[]} every chrome.tabs.sendMessage */
export const delivered = [];
/** @type {{id: number, url: string}[]} every chrome.windows.create */
export const windows = [];
/** @type {number[]} every chrome.windows.remove */
export const removedWindows = [];

/** @param {string} name */
const area = (name) => ({
  /** @param {string[]} keys */
  get: async (keys) => Object.fromEntries(keys.filter((k) => k in areas[name]).map((k) => [k, structuredClone(areas[name][k])])),
  /** @param {Record<string, unknown>} items */
  set: async (items) => void Object.assign(areas[name], structuredClone(items)),
  setAccessLevel: async () => {},
});
const noop = async () => {};

/** @type {any} */ (globalThis).chrome = {
  storage: { session: area('session'), local: area('local') },
  tabs: {
    get: async (/** @type {number} */ id) => ({ id }),
    sendMessage: async (/** @type {number} */ tabId, /** @type {any} */ msg, /** @type {any} */ opts) => void delivered.push({ tabId, msg, opts }),
  },
  windows: {
    create: async (/** @type {any} */ o) => {
      const w = { id: 100 + windows.length, url: o.url };
      windows.push(w);
      return w;
    },
    remove: async (/** @type {number} */ id) => void removedWindows.push(id),
    get: async (/** @type {number} */ id) => ({ id }),
  },
  runtime: { getURL: (/** @type {string} */ p) => `chrome-extension://ext/${p}` },
  action: { setBadgeText: noop, setBadgeBackgroundColor: noop, setTitle: noop },
};

/** A WebSocket that opens on the next microtask and records what the extension sends. */
export class FakeWebSocket {
  static OPEN = 1;
  /** @type {FakeWebSocket[]} every socket ever opened, oldest first */
  static all = [];
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {any[]} */
    this.sent = [];
    /** @type {string[] | undefined} every frame as sent, text */
    this.frames = undefined;
    /** @type {number | null} the code the extension closed it with */
    this.closedWith = null;
    /** @type {any} */ this.onopen = null;
    /** @type {any} */ this.onmessage = null;
    /** @type {any} */ this.onclose = null;
    /** @type {any} */ this.onerror = null;
    FakeWebSocket.all.push(this);
    queueMicrotask(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.();
    });
  }
  /**
   * A fake service that answers what the extension sends, for every socket: (socket, message).
   * @type {((socket: FakeWebSocket, message: any) => void) | null}
   */
  static responder = null;
  /** @param {string} text */
  send(text) {
    /** @type {string[]} */ (this.frames ??= []).push(text);
    const message = JSON.parse(text);
    this.sent.push(message);
    FakeWebSocket.responder?.(this, message);
  }
  /** @param {number} [code] */
  close(code = 1005) {
    this.readyState = 3;
    this.closedWith = code;
  }
  /** The service sends `message`. @param {any} message */
  serve(message) {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  /** The connection drops with `code`. @param {number} code */
  drop(code) {
    this.readyState = 3;
    this.onclose?.({ code });
  }
  /** The last message of `type` the extension sent. @param {string} type */
  last(type) {
    return [...this.sent].reverse().find((m) => m.type === type);
  }
}
/** @type {any} */ (globalThis).WebSocket = FakeWebSocket;

/** The newest socket. */
export const ws = () => FakeWebSocket.all[FakeWebSocket.all.length - 1];

/** @param {() => unknown} cond */
export async function waitFor(cond, ms = 3000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 5));
  }
}
