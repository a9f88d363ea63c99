/// <reference types="chrome" />
// The stream protocol's client side: which document streams for which link, start / attention /
// stop / resume on the socket, the service's answers, and each receipt delivered to the one
// document that started its stream.

import { isAttentive } from '../shared/attention.js';
import { chooseLink, httpOrigin } from '../shared/links.js';
import { socket } from './socket.js';
import { endPrivateFor, reconcilePrivate, stopAllPrivate } from './private.js';
import { deliverReceipt } from './receipts.js';
import { state } from './state.js';
import { changed } from './status.js';

function nextRef() {
  state.refCounter += 1;
  return `t${Date.now().toString(36)}-${state.refCounter}`;
}

/** @param {import('./state.js').Doc} doc */
function attentive(doc) {
  return isAttentive(doc, state.idle);
}

/** @param {string} sid */
function stopStream(sid) {
  const stream = state.streams[sid];
  if (!stream) return;
  if (socket.send({ type: 'stop', sid })) {
    stream.stopping = true;
  } else {
    // Not connected: the service already stopped its accrual; it ends after the grace period.
    delete state.streams[sid];
  }
}

/**
 * Bring one page's stream in line with what should happen.
 * @param {string} key
 */
function reconcile(key) {
  const doc = state.docs[key];
  if (!doc) return;
  reconcilePrivate(key);
  // In private mode the identified stream is not wanted: private.js pays the page with tokens.
  const want = state.token && !state.privatePayments ? chooseLink(doc.links, new Set(doc.refused)) : null;
  const current = doc.sid ? state.streams[doc.sid] : undefined;
  if (doc.sid && !current) doc.sid = null;
  if (current && doc.sid) {
    if (!want || want.pointer !== current.pointer || want.binding !== current.binding) {
      stopStream(doc.sid);
      doc.sid = null;
      doc.serverState = null;
      doc.lastActive = null;
    } else if (want.id !== current.linkId) {
      current.linkId = want.id; // the same pointer on a replaced <link>: keep paying, deliver there
    }
  }
  if (doc.ref) {
    const pending = state.pending[doc.ref];
    if (!want || !pending || pending.pointer !== want.pointer || pending.binding !== want.binding) doc.ref = null;
  }
  if (!socket.connected) return;
  const active = attentive(doc);
  if (want && !doc.sid && !doc.ref && !doc.error) {
    const ref = nextRef();
    /** @type {Record<string, unknown>} */
    const start = { type: 'start', ref, origin: doc.origin, pointer: want.pointer, active };
    if (want.binding !== null) start.binding = want.binding;
    if (socket.send(start)) {
      state.pending[ref] = { docKey: key, pointer: want.pointer, binding: want.binding, linkId: want.id };
      doc.ref = ref;
      doc.lastActive = active;
    }
  } else if (doc.sid && doc.lastActive !== active) {
    if (socket.send({ type: 'attention', sid: doc.sid, active })) doc.lastActive = active;
  }
}

/** Bring every page's stream in line (after a change that may concern all of them). */
export function reconcileAll() {
  for (const key of Object.keys(state.docs)) reconcile(key);
  changed();
}

/** After (re)connecting: take over the streams of the dropped connection, then start the rest. */
export function resumeAll() {
  for (const doc of Object.values(state.docs)) if (doc.error !== 'payee_not_found') doc.error = null;
  for (const [sid, stream] of Object.entries(state.streams)) {
    const doc = state.docs[stream.docKey];
    const keep = doc && doc.sid === sid && doc.page === stream.page && !stream.stopping && state.token && !state.privatePayments;
    socket.send({ type: 'resume', sid, active: keep ? attentive(doc) : false });
    if (keep) {
      doc.lastActive = attentive(doc);
    } else {
      socket.send({ type: 'stop', sid });
      stream.stopping = true;
    }
  }
  reconcileAll();
}

/**
 * The connection dropped: the starts it carried are unanswered for good, and the service no
 * longer knows the attention nor the state of any stream (resumeAll tells it again).
 */
export function connectionLost() {
  state.pending = {};
  for (const doc of Object.values(state.docs)) {
    doc.ref = null;
    doc.lastActive = null;
    doc.serverState = null;
  }
}

/** The session ends: stop every stream at the service (while the socket is up) and forget them. */
export function stopAll() {
  stopAllPrivate();
  for (const sid of Object.keys(state.streams)) socket.send({ type: 'stop', sid });
  state.streams = {};
  state.pending = {};
  for (const doc of Object.values(state.docs)) {
    doc.sid = null;
    doc.ref = null;
    doc.serverState = null;
    doc.lastActive = null;
  }
}

/**
 * @param {string} key
 */
function removeDoc(key) {
  const doc = state.docs[key];
  if (!doc) return;
  if (doc.sid) stopStream(doc.sid);
  endPrivateFor(doc);
  delete state.docs[key];
}

/** @param {number} tabId */
export function removeTab(tabId) {
  for (const [key, doc] of Object.entries(state.docs)) if (doc.tabId === tabId) removeDoc(key);
  changed();
}

/**
 * A content script reported its document.
 * @param {import('../shared/messages.js').PageUpdate | import('../shared/messages.js').PageLeave} message
 * @param {chrome.runtime.MessageSender} sender  already checked to be our content script
 */
export function pageMessage(message, sender) {
  const tabId = /** @type {number} */ (sender.tab?.id);
  const frameId = sender.frameId ?? 0;
  const key = `${tabId}:${frameId}`;
  const existing = state.docs[key];
  if (message.type === 'page/leave') {
    if (existing && existing.page === message.page) removeDoc(key);
    changed();
    return;
  }
  const origin = httpOrigin(sender.origin && sender.origin !== 'null' ? sender.origin : sender.url);
  if (existing && (existing.page !== message.page || existing.origin !== origin)) removeDoc(key);
  if (!origin || (message.links.length === 0 && !state.docs[key])) {
    changed();
    return;
  }
  const doc = state.docs[key] ?? {
    tabId,
    frameId,
    documentId: typeof sender.documentId === 'string' ? sender.documentId : null,
    page: message.page,
    origin,
    links: [],
    visible: false,
    focused: false,
    frozen: false,
    sid: null,
    ref: null,
    serverState: null,
    lastActive: null,
    refused: [],
    error: null,
    sent: '0',
  };
  if (JSON.stringify(doc.links) !== JSON.stringify(message.links)) doc.error = null;
  doc.links = message.links;
  doc.visible = message.visible;
  doc.focused = message.focused;
  doc.frozen = message.frozen;
  state.docs[key] = doc;
  reconcile(key);
  if (doc.links.length === 0 && !doc.sid) delete state.docs[key];
  changed();
}

/** @param {boolean} idle */
export function setIdle(idle) {
  if (state.idle === idle) return;
  state.idle = idle;
  reconcileAll();
}

/** @param {import('./protocol.js').ServerMessage} message */
export function handleServerMessage(message) {
  switch (message.type) {
    case 'started': {
      const pending = state.pending[message.ref];
      delete state.pending[message.ref];
      const doc = pending ? state.docs[pending.docKey] : undefined;
      if (!pending || !doc || doc.ref !== message.ref) {
        socket.send({ type: 'stop', sid: message.sid });
        break;
      }
      doc.ref = null;
      doc.sid = message.sid;
      state.streams[message.sid] = {
        docKey: pending.docKey,
        page: doc.page,
        origin: doc.origin,
        linkId: pending.linkId,
        pointer: pending.pointer,
        binding: pending.binding,
        seq: 0,
        tot: '0',
        stopping: false,
      };
      reconcile(pending.docKey);
      break;
    }
    case 'state': {
      const stream = state.streams[message.sid];
      const doc = stream ? state.docs[stream.docKey] : undefined;
      if (doc && doc.sid === message.sid) doc.serverState = message.state;
      // The service sends at most one `balance` a second after commits and drops the rest, so
      // when a stream stops accruing the last one may be missing: ask for the final figures.
      if (message.state !== 'active') socket.send({ type: 'balance' });
      break;
    }
    case 'resumed': {
      const stream = state.streams[message.sid];
      if (stream && message.seq < stream.seq) stream.seq = message.seq;
      break;
    }
    case 'receipt':
      receipt(message);
      break;
    case 'stopped':
      delete state.streams[message.sid];
      break;
    case 'balance':
      state.money = message.money;
      break;
    case 'error':
      streamError(message);
      break;
    default:
      break;
  }
  changed();
}

/** @param {import('./protocol.js').ErrorMsg} error */
function streamError(error) {
  if (error.ref) {
    const pending = state.pending[error.ref];
    delete state.pending[error.ref];
    const doc = pending ? state.docs[pending.docKey] : undefined;
    if (!pending || !doc || doc.ref !== error.ref) return;
    doc.ref = null;
    if (error.code === 'payee_not_found') {
      doc.refused.push(pending.pointer); // try the page's next link, if it has one
      if (!chooseLink(doc.links, new Set(doc.refused))) doc.error = error.code;
    } else {
      doc.error = error.code;
    }
    reconcile(pending.docKey);
    return;
  }
  if (error.sid && error.code === 'unknown_stream') {
    // The service no longer has it (grace period over, or another service): start afresh.
    const stream = state.streams[error.sid];
    delete state.streams[error.sid];
    const doc = stream ? state.docs[stream.docKey] : undefined;
    if (doc && doc.sid === error.sid) {
      doc.sid = null;
      doc.serverState = null;
      doc.lastActive = null;
      reconcile(stream?.docKey ?? '');
    }
  }
}

/** @param {import('./protocol.js').ReceiptMsg} message */
function receipt(message) {
  const stream = state.streams[message.sid];
  if (!stream || message.seq <= stream.seq) return; // unknown, or already delivered (a resent copy)
  const delta = BigInt(message.tot) - BigInt(stream.tot);
  stream.seq = message.seq;
  stream.tot = message.tot;
  deliverReceipt(stream, message, delta, state.money, false);
}
