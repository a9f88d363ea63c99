// The service worker's WebSockets to the service: hello first, ping to stay alive, reconnect with
// backoff and jitter after a drop (never after "unauthenticated"). StreamSocket is the reader's
// own (`/api/v1/stream`, its hello carries the session token); PrivateSocket is the anonymous one
// for private spending (`/api/v1/private-stream`): it has no session to send, by construction.

import { backoffDelay } from '../shared/backoff.js';
import { httpOrigin } from '../shared/links.js';
import { CLOSE_UNSUPPORTED_VERSION, PROTOCOL_VERSION, endsSession, parsePrivateFrame, parseServerFrame } from './protocol.js';

/** How often a quiet connection pings (the service closes one silent for 60 s). */
export const PING_MS = 20_000;

/**
 * @typedef {import('./protocol.js').ServerMessage} ServerMessage
 * @typedef {import('./protocol.js').Welcome} Welcome
 * @typedef {import('./protocol.js').PrivateWelcome} PrivateWelcome
 * @typedef {object} SocketHandlers
 * @property {(welcome: Welcome) => void} onWelcome
 * @property {(message: ServerMessage) => void} onMessage
 * @property {(code: number, willRetry: boolean) => void} onDown
 */

/** What a socket does with what arrives and how it goes down (the welcome's type is its own). */
/**
 * @template W
 * @typedef {object} Handlers
 * @property {(welcome: W) => void} onWelcome
 * @property {(message: ServerMessage) => void} onMessage
 * @property {(code: number, willRetry: boolean) => void} onDown
 */

/**
 * A reconnecting socket; subclasses say what their hello is and how frames are read.
 * @template W
 */
class Socket {
  /** @param {Handlers<W>} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.url = '';
    this.welcomed = false;
    this.wanted = false;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.pingTimer = null;
    /** The close code of the last drop, 0 while none. */
    this.lastCloseCode = 0;
  }

  /**
   * The first message on a new connection, or null to close it (nothing to say hello with).
   * @protected
   * @returns {Record<string, unknown> | null}
   */
  hello() {
    return null;
  }

  /**
   * The messages of one text frame, the welcome among them.
   * @protected
   * @param {string} _text
   * @returns {(ServerMessage | {type: 'welcome', welcome: W})[]}
   */
  read(_text) {
    return [];
  }

  /**
   * Be connected to `url` (reconnects when it changed).
   * @protected
   * @param {string} url
   * @param {boolean} changed  something the hello says changed
   */
  connectTo(url, changed) {
    const same = this.url === url && !changed;
    this.wanted = true;
    if (same && (this.ws || this.retryTimer)) return;
    this.url = url;
    this.attempt = 0;
    this.teardown();
    this.open();
  }

  /** Reconnect now if a retry is waiting (an alarm woke the worker). */
  poke() {
    if (!this.wanted || this.ws) return;
    this.teardown();
    this.open();
  }

  /** Close for good. */
  stop() {
    this.wanted = false;
    this.teardown();
  }

  get connected() {
    return this.welcomed && this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Send a client message; false when the socket is not welcomed yet.
   * @param {Record<string, unknown>} message
   */
  send(message) {
    if (!this.connected || !this.ws) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** @protected */
  teardown() {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.retryTimer = null;
    this.pingTimer = null;
    const ws = this.ws;
    this.ws = null;
    this.welcomed = false;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // already closed
      }
    }
  }

  /** @protected */
  open() {
    /** @type {WebSocket} */
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.dropped(1006);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const hello = this.ws === ws ? this.hello() : null;
      if (hello) ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      for (const message of this.read(event.data)) {
        if ('welcome' in message) {
          this.welcomed = true;
          this.attempt = 0;
          this.lastCloseCode = 0;
          this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_MS);
          this.handlers.onWelcome(message.welcome);
        } else if (this.welcomed) {
          this.handlers.onMessage(message);
        }
      }
    };
    ws.onerror = () => {
      // onclose follows with the code
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.dropped(event.code);
    };
  }

  /**
   * @protected
   * @param {number} code
   */
  dropped(code) {
    this.welcomed = false;
    this.lastCloseCode = code;
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    const retry = this.wanted && !endsSession(code) && code !== CLOSE_UNSUPPORTED_VERSION;
    if (retry) {
      const delay = backoffDelay(this.attempt);
      this.attempt += 1;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.open();
      }, delay);
    } else {
      this.wanted = false;
    }
    this.handlers.onDown(code, retry);
  }
}

/**
 * The reader's own socket (`/api/v1/stream`): its hello carries the session token, and only to the
 * origin that issued it.
 * @extends {Socket<Welcome>}
 */
export class StreamSocket extends Socket {
  /** @param {SocketHandlers} handlers */
  constructor(handlers) {
    super(handlers);
    /** @type {import('./api.js').Auth | null} */
    this.auth = null;
  }

  /**
   * Be connected to `url` with the session `auth` (reconnects when either changed). Refuses a
   * URL outside the origin that issued the token: the hello would hand it to another service.
   * @param {string} url  ws(s)://…
   * @param {import('./api.js').Auth} auth
   */
  ensure(url, auth) {
    if (socketServiceOrigin(url) !== auth.origin) {
      this.stop();
      throw new Error(`the session of ${auth.origin} is not for ${url}`);
    }
    const changed = this.auth?.token !== auth.token;
    this.auth = auth;
    this.connectTo(url, changed);
  }

  /**
   * Close for good (signed out): the socket closes and the token is forgotten.
   * @override
   */
  stop() {
    super.stop();
    this.auth = null;
  }

  /**
   * @protected
   * @override
   */
  hello() {
    return this.auth ? { type: 'hello', v: PROTOCOL_VERSION, token: this.auth.token, batch: true } : null;
  }

  /**
   * @protected
   * @override
   * @param {string} text
   */
  read(text) {
    return parseServerFrame(text).map((m) => (m.type === 'welcome' ? { type: /** @type {const} */ ('welcome'), welcome: m } : m));
  }
}

/**
 * The anonymous socket of private spending (`/api/v1/private-stream`): no session token, no
 * cookie (a WebSocket from the service worker sends none the extension did not set, and it sets
 * none), no identifier of the reader's own socket. It holds no session to send.
 * @extends {Socket<PrivateWelcome>}
 */
export class PrivateSocket extends Socket {
  /** @param {string} url  ws(s)://…/api/v1/private-stream */
  ensure(url) {
    this.connectTo(url, false);
  }

  /**
   * @protected
   * @override
   */
  hello() {
    return { type: 'hello', v: PROTOCOL_VERSION, private: true, batch: true };
  }

  /**
   * @protected
   * @override
   * @param {string} text
   */
  read(text) {
    return parsePrivateFrame(text).map((m) => (m.type === 'welcome' ? { type: /** @type {const} */ ('welcome'), welcome: m } : m));
  }
}

/**
 * The http(s) origin of the service a ws(s) URL belongs to, or null.
 * @param {string} url
 */
export function socketServiceOrigin(url) {
  try {
    const parsed = new URL(url);
    if (parsed.protocol === 'ws:') parsed.protocol = 'http:';
    else if (parsed.protocol === 'wss:') parsed.protocol = 'https:';
    else return null;
    return httpOrigin(parsed.href);
  } catch {
    return null;
  }
}
