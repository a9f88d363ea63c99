// The one WebSocket from the service worker to the service: hello first, ping to stay alive,
// reconnect with backoff and jitter after a drop (never after "unauthenticated").

import { backoffDelay } from '../shared/backoff.js';
import { httpOrigin } from '../shared/links.js';
import { CLOSE_UNSUPPORTED_VERSION, PROTOCOL_VERSION, endsSession, parseServerFrame } from './protocol.js';

/** How often a quiet connection pings (the service closes one silent for 60 s). */
export const PING_MS = 20_000;

/**
 * @typedef {import('./protocol.js').ServerMessage} ServerMessage
 * @typedef {import('./protocol.js').Welcome} Welcome
 * @typedef {object} SocketHandlers
 * @property {(welcome: Welcome) => void} onWelcome
 * @property {(message: ServerMessage) => void} onMessage
 * @property {(code: number, willRetry: boolean) => void} onDown
 */

export class StreamSocket {
  /** @param {SocketHandlers} handlers */
  constructor(handlers) {
    this.handlers = handlers;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.url = '';
    /** @type {import('./api.js').Auth | null} */
    this.auth = null;
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
    const same = this.url === url && this.auth?.token === auth.token;
    this.wanted = true;
    if (same && (this.ws || this.retryTimer)) return;
    this.url = url;
    this.auth = auth;
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

  /** Close for good (signed out): the socket closes and the token is forgotten. */
  stop() {
    this.wanted = false;
    this.auth = null;
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

  /** @private */
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

  /** @private */
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
      if (this.ws !== ws || !this.auth) return;
      ws.send(JSON.stringify({ type: 'hello', v: PROTOCOL_VERSION, token: this.auth.token, batch: true }));
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws || typeof event.data !== 'string') return;
      for (const message of parseServerFrame(event.data)) {
        if (message.type === 'welcome') {
          this.welcomed = true;
          this.attempt = 0;
          this.lastCloseCode = 0;
          this.pingTimer = setInterval(() => this.send({ type: 'ping' }), PING_MS);
          this.handlers.onWelcome(message);
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
   * @private
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
