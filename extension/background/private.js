/// <reference types="chrome" />
// Private streaming (docs/extension.md, "Private payments"): one stream per monetized document on
// the anonymous socket (`/api/v1/private-stream`), and the pacing the service does for identified
// streams done here instead: each stream accrues by the one accrual rule (shared/accrual.js: the
// reader's rate or the site's, shared among the active streams, only while the page has the
// reader's attention, never while paused or the site is off) and spends one token per token value
// accrued. Attention never goes on the wire; the service sees a start and tokens.

import { Accrual, pacedState, settle } from '../shared/accrual.js';
import { isAttentive } from '../shared/attention.js';
import { chooseLink, serviceUrls } from '../shared/links.js';
import { deliverReceipt } from './receipts.js';
import { handlePrivateSocketEvents, privateSocket } from './socket.js';
import { state } from './state.js';
import { changed } from './status.js';
import * as wallet from './tokens.js';

/** How often the pacer settles the accrual and looks for whole tokens to spend. */
export const TICK_MS = 250;
/** The most tokens one spend carries (after a stall, accrual beyond one token is paid in one go). */
export const MAX_TOKENS_PER_SPEND = 8;
/** States in which what was accrued is dropped, not paid later (as the service does for a reader it blocks). */
const BLOCKED = new Set(['insufficient_funds', 'budget_exhausted', 'account_frozen']);

/**
 * @typedef {object} PrivateStream
 * @property {string} id  the client's random id of the stream: nothing else of the reader's
 * @property {string} docKey
 * @property {string} page
 * @property {string} origin
 * @property {string} linkId
 * @property {string} pointer
 * @property {string | null} binding
 * @property {string | null} sid  the service's, once `started`
 * @property {number} seq
 * @property {string} tot
 * @property {import('../shared/accrual.js').PacedState} state
 * @property {Accrual} accrual
 * @property {number} lastMs
 * @property {bigint} owedMinor  whole minor units accrued and not yet paid
 * @property {string | null} spendRef  the spend in flight (one at a time per stream)
 * @property {bigint} spendMinor  what it pays
 * @property {number} spends
 * @property {boolean} stopping  its document is gone: it ends when its spend is answered
 */

/** @type {Map<string, PrivateStream>} */
export const privateStreams = new Map();
/** @type {ReturnType<typeof setInterval> | null} */
let ticker = null;

handlePrivateSocketEvents({
  onWelcome: () => {
    reconcileAllPrivate();
  },
  onMessage: (message) => {
    handle(message);
    changed();
  },
  onDown: () => {
    lost();
    changed();
  },
});

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The reader's rules as the pacer reads them, or null before the settings are known. */
function policy() {
  const s = state.settings;
  return s ? { paused: s.paused, rate: s.rate, overrides: state.overrides } : null;
}

/** Be connected while signed in with private payments on; closed (streams ended) otherwise. */
export function connectPrivate() {
  if (state.token && state.privatePayments) {
    privateSocket.ensure(serviceUrls(state.serviceUrl).privateStream);
  } else {
    stopAllPrivate();
    privateSocket.stop();
  }
}

/** An alarm woke the worker: reconnect now if a retry waits. */
export function pokePrivate() {
  privateSocket.poke();
}

/** @param {PrivateStream} stream */
function endStream(stream) {
  const doc = state.docs[stream.docKey];
  if (doc && doc.privateId === stream.id) {
    doc.privateId = null;
    doc.serverState = null;
  }
  privateSocket.send({ type: 'stop', stream: stream.id });
  if (stream.spendRef) stream.stopping = true; // its receipt still counts
  else privateStreams.delete(stream.id);
}

/**
 * Bring one document's private stream in line with what should happen.
 * @param {string} key
 */
export function reconcilePrivate(key) {
  const doc = state.docs[key];
  if (!doc) return;
  const want = state.token && state.privatePayments ? chooseLink(doc.links, new Set(doc.refused)) : null;
  const current = doc.privateId ? privateStreams.get(doc.privateId) : undefined;
  if (doc.privateId && !current) doc.privateId = null;
  if (current) {
    if (!want || want.pointer !== current.pointer || want.binding !== current.binding || current.page !== doc.page) {
      endStream(current);
    } else if (want.id !== current.linkId) {
      current.linkId = want.id;
    }
  }
  if (want && !doc.privateId && !doc.error && privateSocket.connected) {
    const id = randomId();
    /** @type {Record<string, unknown>} */
    const start = { type: 'start', stream: id, origin: doc.origin, pointer: want.pointer };
    if (want.binding !== null) start.binding = want.binding;
    if (privateSocket.send(start)) {
      privateStreams.set(id, {
        id,
        docKey: key,
        page: doc.page,
        origin: doc.origin,
        linkId: want.id,
        pointer: want.pointer,
        binding: want.binding,
        sid: null,
        seq: 0,
        tot: '0',
        state: 'disconnected',
        accrual: new Accrual(),
        lastMs: Date.now(),
        owedMinor: 0n,
        spendRef: null,
        spendMinor: 0n,
        spends: 0,
        stopping: false,
      });
      doc.privateId = id;
    }
  }
  pace();
}

/**
 * A document goes away: its private stream ends.
 * @param {import('./state.js').Doc} doc
 */
export function endPrivateFor(doc) {
  const stream = doc.privateId ? privateStreams.get(doc.privateId) : undefined;
  if (stream) endStream(stream);
}

/** Every document (after a change that may concern all of them). */
export function reconcileAllPrivate() {
  for (const key of Object.keys(state.docs)) reconcilePrivate(key);
  changed();
}

/**
 * Sign-out or private payments turned off: every private stream ends, and tokens out without an
 * answer yet are kept as unsure (they may be spent).
 */
export function stopAllPrivate() {
  for (const stream of privateStreams.values()) {
    privateSocket.send({ type: 'stop', stream: stream.id });
    if (stream.spendRef) void wallet.giveBack(stream.spendRef, { sent: true });
  }
  privateStreams.clear();
  for (const doc of Object.values(state.docs)) {
    if (doc.privateId) doc.serverState = null;
    doc.privateId = null;
  }
  pace();
}

/** The socket dropped: its streams are over; tokens out without an answer may have been spent. */
function lost() {
  for (const stream of privateStreams.values()) {
    if (stream.spendRef) void wallet.giveBack(stream.spendRef, { sent: true });
  }
  privateStreams.clear();
  for (const doc of Object.values(state.docs)) {
    if (doc.privateId) {
      doc.privateId = null;
      doc.serverState = null;
    }
  }
  pace();
}

/**
 * Settle every stream's accrual at the states it had, take the new states, and spend what has
 * become whole tokens. Runs every TICK_MS while there are private streams.
 */
export function pace() {
  const now = Date.now();
  const rules = policy();
  const streams = [...privateStreams.values()];
  if (rules) settle(streams, rules, now);
  const blocked = wallet.blocked();
  const error = wallet.held() === 0 ? (wallet.current()?.error ?? null) : null;
  const walletError = error === 'token_key_mismatch' || error === 'tokens_unavailable' ? error : null;
  let moved = walletError !== state.walletError;
  state.walletError = walletError;
  for (const stream of streams) {
    const doc = state.docs[stream.docKey];
    const next =
      rules && doc && !stream.stopping && doc.privateId === stream.id
        ? pacedState({
            connected: privateSocket.connected && stream.sid !== null,
            frozen: blocked === 'account_frozen',
            blocked: blocked === 'account_frozen' ? null : blocked,
            policy: rules,
            origin: stream.origin,
            attentive: isAttentive(doc, state.idle),
          })
        : 'disconnected';
    if (next !== stream.state && BLOCKED.has(next)) {
      stream.accrual.clear(); // unpaid time while blocked is not charged later
      stream.owedMinor = 0n;
    }
    stream.state = next;
    if (doc && doc.privateId === stream.id) {
      const shown = stream.sid === null ? null : next;
      if (doc.serverState !== shown) moved = true;
      doc.serverState = shown;
    }
    stream.owedMinor += stream.accrual.take();
    void spend(stream);
  }
  if (moved) changed(); // a page's status changed: its badge follows
  const wanted = privateStreams.size > 0;
  if (wanted && !ticker) ticker = setInterval(pace, TICK_MS);
  if (!wanted && ticker) {
    clearInterval(ticker);
    ticker = null;
  }
}

/**
 * Spend the whole tokens a stream owes, if none of its spends is in flight.
 * @param {PrivateStream} stream
 */
async function spend(stream) {
  const value = wallet.tokenValue();
  if (!value || stream.spendRef || stream.sid === null) return;
  const unit = BigInt(value.valueMinor);
  const whole = stream.owedMinor / unit;
  if (whole < 1n) return;
  stream.spends += 1;
  const ref = `${stream.id}:${stream.spends}`;
  stream.spendRef = ref; // before the await: one spend at a time
  const count = Number(whole > BigInt(MAX_TOKENS_PER_SPEND) ? BigInt(MAX_TOKENS_PER_SPEND) : whole);
  const tokens = await wallet.take(ref, count);
  if (!tokens) {
    stream.spendRef = null;
    return;
  }
  const live = privateStreams.get(stream.id) === stream && stream.sid !== null;
  if (!live || !privateSocket.send({ type: 'spend', stream: stream.id, tokens })) {
    stream.spendRef = null;
    await wallet.giveBack(ref, { sent: false });
    return;
  }
  // What these tokens are worth (their epoch's value: a changed value applies to new epochs
  // only); owed may dip below zero for a moment, so spending never runs ahead of the rate.
  stream.spendMinor = BigInt(tokens.length) * (wallet.valueOf(tokens[0].epoch) ?? unit);
  stream.owedMinor -= stream.spendMinor;
}

/**
 * @param {PrivateStream} stream
 */
function spendAnswered(stream) {
  stream.spendRef = null;
  stream.spendMinor = 0n;
  if (stream.stopping) privateStreams.delete(stream.id);
}

/** @param {import('./protocol.js').ServerMessage} message */
function handle(message) {
  switch (message.type) {
    case 'started': {
      const stream = privateStreams.get(message.ref);
      if (!stream || stream.sid !== null) break;
      stream.sid = message.sid;
      stream.lastMs = Date.now();
      pace();
      break;
    }
    case 'receipt': {
      const stream = [...privateStreams.values()].find((s) => s.sid === message.sid);
      if (!stream) break;
      if (stream.spendRef) void wallet.spent(stream.spendRef);
      spendAnswered(stream);
      if (message.seq <= stream.seq) break;
      const delta = BigInt(message.tot) - BigInt(stream.tot);
      stream.seq = message.seq;
      stream.tot = message.tot;
      const value = wallet.tokenValue();
      const asset = value ?? state.money ?? state.settings;
      deliverReceipt(stream, message, delta, asset ? { currency: asset.currency, scale: asset.scale } : null, true);
      break;
    }
    case 'error':
      streamError(message);
      break;
    default:
      break;
  }
}

/** @param {import('./protocol.js').ErrorMsg} error */
function streamError(error) {
  const stream = error.ref ? privateStreams.get(error.ref) : undefined;
  if (!stream) return;
  if (stream.sid === null) {
    // The start was refused.
    privateStreams.delete(stream.id);
    const doc = state.docs[stream.docKey];
    if (!doc || doc.privateId !== stream.id) return;
    doc.privateId = null;
    if (error.code === 'payee_not_found') {
      doc.refused.push(stream.pointer);
      if (!chooseLink(doc.links, new Set(doc.refused))) doc.error = error.code;
    } else {
      doc.error = error.code;
    }
    reconcilePrivate(stream.docKey);
    return;
  }
  const ref = stream.spendRef;
  if (!ref) return;
  stream.owedMinor += stream.spendMinor; // nothing moved for this spend: it is owed again
  const index = error.index ?? null;
  if ((error.code === 'token_spent' || error.code === 'invalid_token') && index !== null) void wallet.refused(ref, index);
  else if (error.code === 'token_spent') void wallet.spent(ref);
  else if (error.code === 'invalid_token') void wallet.refused(ref, null);
  else void wallet.giveBack(ref, { sent: false });
  spendAnswered(stream);
}
