// The stream protocol (docs/stream-protocol.md), client side: what the extension sends, and a
// tolerant reader of what the service sends (unknown types and fields are ignored, as the
// protocol's versioning rules ask; known fields of the wrong type drop the message).

import { isMinor } from '../shared/amounts.js';

export const PROTOCOL_VERSION = 1;

/**
 * @typedef {{currency: string, scale: number, balance: string, monthSpent: string, monthBudget: string}} Money
 * @typedef {{type: 'welcome', interval: number, money: Money}} Welcome
 * @typedef {{type: 'started', ref: string, sid: string}} Started
 * @typedef {{type: 'state', sid: string, state: string}} StateMsg
 * @typedef {{type: 'receipt', sid: string, seq: number, amt: string, tot: string, receipt: string, resent: boolean}} ReceiptMsg
 * @typedef {{type: 'balance', money: Money}} BalanceMsg
 * @typedef {{type: 'resumed', sid: string, seq: number, tot: string}} Resumed
 * @typedef {{type: 'stopped', sid: string, seq: number, tot: string}} Stopped
 * @typedef {{type: 'pong'}} Pong
 * @typedef {{type: 'error', code: string, message: string, ref: string | null, sid: string | null, index?: number | null}} ErrorMsg
 * @typedef {{type: 'welcome', interval: number | null}} PrivateWelcome
 * @typedef {Welcome | Started | StateMsg | ReceiptMsg | BalanceMsg | Resumed | Stopped | Pong | ErrorMsg} ServerMessage
 */

/** @param {unknown} v @returns {v is string} */
const isStr = (v) => typeof v === 'string';
/** @param {unknown} v @returns {v is number} */
const isInt = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * @param {Record<string, unknown>} m
 * @returns {Money | null}
 */
function money(m) {
  const { balance_minor, month_spent_minor, month_budget_minor, currency, scale } = m;
  if (!isMinor(balance_minor) || !isMinor(month_spent_minor) || !isMinor(month_budget_minor)) return null;
  if (!isStr(currency) || !isInt(scale) || scale > 18) return null;
  return { currency, scale, balance: balance_minor, monthSpent: month_spent_minor, monthBudget: month_budget_minor };
}

/**
 * Parse one text frame from the service: a single message, or a `batch` envelope of several
 * (the client asks for those in `hello`). Returns the messages this client uses, in order;
 * anything else is dropped.
 * @param {string} text
 * @returns {ServerMessage[]}
 */
export function parseServerFrame(text) {
  /** @type {unknown} */
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  const frame = /** @type {Record<string, unknown> | null} */ (typeof data === 'object' && !Array.isArray(data) ? data : null);
  const items = frame?.type === 'batch' && Array.isArray(frame.messages) ? frame.messages : [data];
  /** @type {ServerMessage[]} */
  const messages = [];
  for (const item of items) {
    const message = readMessage(item);
    if (message) messages.push(message);
  }
  return messages;
}

/**
 * @param {unknown} data
 * @returns {ServerMessage | null}
 */
function readMessage(data) {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return null;
  const m = /** @type {Record<string, unknown>} */ (data);
  switch (m.type) {
    case 'welcome': {
      const mon = money(m);
      if (!mon || !isInt(m.interval_ms)) return null;
      return { type: 'welcome', interval: m.interval_ms, money: mon };
    }
    case 'balance': {
      const mon = money(m);
      return mon ? { type: 'balance', money: mon } : null;
    }
    case 'started':
      return isStr(m.ref) && isStr(m.sid) ? { type: 'started', ref: m.ref, sid: m.sid } : null;
    case 'state':
      return isStr(m.sid) && isStr(m.state) ? { type: 'state', sid: m.sid, state: m.state } : null;
    case 'receipt':
      if (!isStr(m.sid) || !isInt(m.seq) || !isMinor(m.amt) || !isMinor(m.tot) || !isStr(m.receipt)) return null;
      return { type: 'receipt', sid: m.sid, seq: m.seq, amt: m.amt, tot: m.tot, receipt: m.receipt, resent: m.resent === true };
    case 'resumed':
    case 'stopped':
      if (!isStr(m.sid) || !isInt(m.seq) || !isMinor(m.tot)) return null;
      return { type: m.type, sid: m.sid, seq: m.seq, tot: m.tot };
    case 'pong':
      return { type: 'pong' };
    case 'error':
      if (!isStr(m.code)) return null;
      return {
        type: 'error',
        code: m.code,
        message: isStr(m.message) ? m.message : m.code,
        ref: isStr(m.ref) ? m.ref : null,
        sid: isStr(m.sid) ? m.sid : null,
      };
    default:
      return null;
  }
}

/**
 * Parse one text frame of the private socket (`/api/v1/private-stream`, docs/stream-protocol.md
 * "Private streams"): as parseServerFrame, with the client's stream id (`stream`) in the place of
 * `ref`, and a welcome that carries no money (the socket belongs to nobody).
 * @param {string} text
 * @returns {(ServerMessage | PrivateWelcome)[]}
 */
export function parsePrivateFrame(text) {
  /** @type {unknown} */
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    return [];
  }
  const frame = /** @type {Record<string, unknown> | null} */ (typeof data === 'object' && !Array.isArray(data) ? data : null);
  const items = frame?.type === 'batch' && Array.isArray(frame.messages) ? frame.messages : [data];
  /** @type {(ServerMessage | PrivateWelcome)[]} */
  const messages = [];
  for (const item of items) {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) continue;
    const m = /** @type {Record<string, unknown>} */ (item);
    const stream = isStr(m.stream) ? m.stream : null;
    if (m.type === 'welcome') {
      messages.push({ type: 'welcome', interval: isInt(m.interval_ms) ? m.interval_ms : null });
    } else if (m.type === 'started') {
      if (stream !== null && isStr(m.sid)) messages.push({ type: 'started', ref: stream, sid: m.sid });
    } else if (m.type === 'error') {
      const message = readMessage(item);
      if (message?.type === 'error') messages.push({ ...message, ref: stream ?? message.ref, index: isInt(m.index) ? m.index : null });
    } else {
      const message = readMessage(item);
      if (message && message.type !== 'welcome' && message.type !== 'balance') messages.push(message);
    }
  }
  return messages;
}

/** Close codes after which reconnecting cannot help until something changes. */
export const CLOSE_UNAUTHENTICATED = 4401;
/** The session was revoked ("log out everywhere") or expired while the socket was open. */
export const CLOSE_SESSION_ENDED = 4440;
export const CLOSE_UNSUPPORTED_VERSION = 4426;

/**
 * Whether a close code means the session is over (the reader is signed out, no reconnect).
 * @param {number} code
 */
export function endsSession(code) {
  return code === CLOSE_UNAUTHENTICATED || code === CLOSE_SESSION_ENDED;
}
