/// <reference types="chrome" />
// The background's state and rules: which pages stream, the stream protocol's client side,
// receipts to pages, and what the popup shows. State that must outlive the service worker is
// kept in chrome.storage.session (token, streams, pages) and chrome.storage.local (service URL,
// payment history); see docs/extension.md.

import { addMinor, formatMinor, isMinor, majorToMinor, minorToDecimal } from '../shared/amounts.js';
import { isAttentive, pageStatus, statusText } from '../shared/attention.js';
import { chooseLink, httpOrigin, serviceUrls, validPointer } from '../shared/links.js';
import { ApiError, callApi } from './api.js';
import { StreamSocket } from './connection.js';

export const DEFAULT_SERVICE_URL = 'http://127.0.0.1:8420';

/**
 * A monetizable document: one per (tab, frame).
 * @typedef {object} Doc
 * @property {number} tabId
 * @property {number} frameId
 * @property {string | null} documentId
 * @property {string} page  the content script's random id for the document
 * @property {string} origin  from the message sender, never from the page
 * @property {import('../shared/messages.js').PageLink[]} links
 * @property {boolean} visible
 * @property {boolean} focused
 * @property {boolean} frozen
 * @property {string | null} sid  its current stream
 * @property {string | null} ref  a start sent and not answered yet
 * @property {string | null} serverState
 * @property {boolean | null} lastActive  the attention last told the service
 * @property {string[]} refused  pointers the service does not know
 * @property {string | null} error
 * @property {string} sent  minor units paid this visit
 */
/**
 * @typedef {object} Stream
 * @property {string} docKey
 * @property {string} page  the document that started it (a frame's next document is another)
 * @property {string} origin
 * @property {string} linkId
 * @property {string} pointer
 * @property {string | null} binding
 * @property {number} seq
 * @property {string} tot
 * @property {boolean} stopping
 */
/** @typedef {{paused: boolean, rate: string, budget: string, currency: string, scale: number}} Settings */
/** @typedef {{rate: string | null, disabled: boolean}} Override */
/** @typedef {{minor: string, updated: number, oneTime?: string, oneTimeCount?: number}} HistoryEntry */

export const state = {
  serviceUrl: DEFAULT_SERVICE_URL,
  /** @type {string | null} */
  token: null,
  /** @type {string | null} the origin of the service that issued `token`: the only one it goes to */
  tokenOrigin: null,
  /** @type {string | null} */
  email: null,
  /** @type {import('./protocol.js').Money | null} */
  money: null,
  /** @type {Settings | null} */
  settings: null,
  /** @type {Record<string, Override>} */
  overrides: {},
  /** @type {Record<string, Doc>} */
  docs: {},
  /** @type {Record<string, Stream>} */
  streams: {},
  /** @type {Record<string, HistoryEntry>} */
  history: {},
  /** @type {Record<string, {docKey: string, pointer: string, binding: string | null, linkId: string}>} */
  pending: {},
  idle: false,
  /** @type {string | null} */
  connectionError: null,
  refCounter: 0,
  settingsFetchedAt: 0,
};

const socket = new StreamSocket({
  onWelcome: (welcome) => {
    state.connectionError = null;
    state.money = welcome.money;
    resumeAll();
    void refreshAccount();
    changed();
  },
  onMessage: (message) => handleServerMessage(message),
  onDown: (code, willRetry) => {
    state.pending = {};
    for (const doc of Object.values(state.docs)) {
      doc.ref = null;
      doc.lastActive = null;
      doc.serverState = null;
    }
    if (code === 4401) {
      // The token is unknown, expired or revoked: the reader is signed out.
      void signOutLocally();
      return;
    }
    state.connectionError = willRetry ? 'service_unreachable' : 'connection_refused';
    changed();
  },
});

/* ---------------------------------------------------------------- persistence */

/** @type {ReturnType<typeof setTimeout> | null} */
let saveTimer = null;
/** @type {ReturnType<typeof setTimeout> | null} */
let historyTimer = null;

function saveSoon() {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = null;
    void chrome.storage.session.set({
      auth: state.token ? { token: state.token, email: state.email, origin: state.tokenOrigin } : null,
      money: state.money,
      settings: state.settings,
      overrides: state.overrides,
      docs: state.docs,
      streams: state.streams,
    });
  }, 50);
}

function saveHistorySoon() {
  if (historyTimer) return;
  historyTimer = setTimeout(() => {
    historyTimer = null;
    void chrome.storage.local.set({ history: state.history });
  }, 500);
}

/** Load what a previous life of the worker left, then connect. */
export async function load() {
  try {
    // The session area holds the token: only the extension's own pages and worker may read it.
    await chrome.storage.session.setAccessLevel?.({ accessLevel: 'TRUSTED_CONTEXTS' });
  } catch {
    // Firefox has no access levels; its session area is not reachable from content scripts.
  }
  const [session, local] = await Promise.all([
    chrome.storage.session.get(['auth', 'money', 'settings', 'overrides', 'docs', 'streams']),
    chrome.storage.local.get(['serviceUrl', 'history']),
  ]);
  state.serviceUrl = serviceBase(local.serviceUrl);
  if (local.history && typeof local.history === 'object') state.history = /** @type {any} */ (local.history);
  const auth = /** @type {any} */ (session.auth);
  // A session issued by another service than the one now configured (or stored without its
  // origin) is not this service's: it is dropped unused.
  const ours = auth && typeof auth.token === 'string' && auth.origin === httpOrigin(state.serviceUrl);
  state.token = ours ? auth.token : null;
  state.tokenOrigin = ours ? auth.origin : null;
  state.email = ours && typeof auth.email === 'string' ? auth.email : null;
  if (auth && !ours) await chrome.storage.session.set({ auth: null });
  state.money = /** @type {any} */ (session.money) ?? null;
  state.settings = /** @type {any} */ (session.settings) ?? null;
  state.overrides = /** @type {any} */ (session.overrides) ?? {};
  state.docs = /** @type {any} */ (session.docs) ?? {};
  state.streams = /** @type {any} */ (session.streams) ?? {};
  for (const doc of Object.values(state.docs)) {
    doc.ref = null;
    doc.lastActive = null;
  }
  // Tabs closed while the worker was stopped.
  const tabIds = new Set(Object.values(state.docs).map((d) => d.tabId));
  for (const tabId of tabIds) {
    try {
      await chrome.tabs.get(tabId);
    } catch {
      removeTab(tabId);
    }
  }
  connect();
  changed();
}

/**
 * The stored service URL, normalized; the default when unset or unusable.
 * @param {unknown} value
 */
function serviceBase(value) {
  if (typeof value === 'string' && value) {
    try {
      return serviceUrls(value).base;
    } catch {
      return DEFAULT_SERVICE_URL;
    }
  }
  return DEFAULT_SERVICE_URL;
}

/**
 * The service URL in chrome.storage.local changed (options page, or a test). A session belongs
 * to the service that issued it: a new URL signs the reader out (token dropped, socket closed)
 * before anything reaches the new service, and the old session is revoked at its own service.
 * @param {unknown} value
 * @returns {Promise<{signedOut: boolean}>} whether a session was ended
 */
export async function serviceUrlChanged(value) {
  const base = serviceBase(value);
  if (base === state.serviceUrl) return { signedOut: false };
  const oldBase = state.serviceUrl;
  const auth = currentAuth();
  // Synchronously, before the new URL is in use: the token leaves memory and the socket closes.
  const signedOut = state.token ? signOutLocally() : null;
  state.serviceUrl = base;
  state.settingsFetchedAt = 0;
  connect();
  changed();
  await signedOut; // and chrome.storage.session no longer holds it
  if (auth) void revoke(oldBase, auth);
  return { signedOut: signedOut !== null };
}

/** The session, with the origin it belongs to; null while signed out. */
function currentAuth() {
  return state.token && state.tokenOrigin ? { token: state.token, origin: state.tokenOrigin } : null;
}

function connect() {
  const auth = currentAuth();
  if (!auth) {
    socket.stop();
    return;
  }
  const urls = serviceUrls(state.serviceUrl);
  if (httpOrigin(urls.base) !== auth.origin) {
    void signOutLocally(); // not reached: a URL change signs out first
    return;
  }
  socket.ensure(urls.stream, auth);
}

/** An alarm woke the worker: make sure the socket is up. */
export function keepAlive() {
  if (state.token) {
    connect();
    socket.poke();
  }
}

/* ---------------------------------------------------------------- streams */

function nextRef() {
  state.refCounter += 1;
  return `t${Date.now().toString(36)}-${state.refCounter}`;
}

/** @param {Doc} doc */
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
  const want = state.token ? chooseLink(doc.links, new Set(doc.refused)) : null;
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

function reconcileAll() {
  for (const key of Object.keys(state.docs)) reconcile(key);
  changed();
}

/** After (re)connecting: take over the streams of the dropped connection, then start the rest. */
function resumeAll() {
  for (const doc of Object.values(state.docs)) if (doc.error !== 'payee_not_found') doc.error = null;
  for (const [sid, stream] of Object.entries(state.streams)) {
    const doc = state.docs[stream.docKey];
    const keep = doc && doc.sid === sid && doc.page === stream.page && !stream.stopping && state.token;
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
 * @param {string} key
 */
function removeDoc(key) {
  const doc = state.docs[key];
  if (!doc) return;
  if (doc.sid) stopStream(doc.sid);
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
function handleServerMessage(message) {
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
  if (delta > 0n) addToHistory(stream.origin, delta, false);
  const doc = state.docs[stream.docKey];
  if (!doc || doc.page !== stream.page) return; // its document is gone: nobody to deliver to
  if (delta > 0n) doc.sent = addMinor(doc.sent, delta);
  const money = state.money;
  if (!money) return;
  const event = {
    amountSent: { currency: money.currency, value: minorToDecimal(message.amt, money.scale) },
    paymentPointer: stream.pointer,
    incomingPayment: null,
    receipt: message.receipt,
    amountMinor: message.amt,
    scale: money.scale,
  };
  /** @type {{frameId: number, documentId?: string}} */
  const target = { frameId: doc.frameId };
  if (doc.documentId) target.documentId = doc.documentId;
  chrome.tabs
    .sendMessage(doc.tabId, { type: 'trickle/receipt', page: doc.page, link: stream.linkId, event }, target)
    .catch(() => {
      // the document went away; its pagehide or the tab's removal cleans up
    });
}

/**
 * Count a payment in the site's history entry: its total always, its one-time part (amount and
 * count) for a purchase or tip. Every part the entry already has is kept.
 * @param {string} origin
 * @param {string | bigint} amountMinor
 * @param {boolean} oneTime
 */
function addToHistory(origin, amountMinor, oneTime) {
  const entry = state.history[origin] ?? { minor: '0', updated: 0 };
  /** @type {HistoryEntry} */
  const next = { ...entry, minor: addMinor(entry.minor, amountMinor), updated: Date.now() };
  if (oneTime) {
    next.oneTime = addMinor(entry.oneTime ?? '0', amountMinor);
    next.oneTimeCount = (entry.oneTimeCount ?? 0) + 1;
  }
  state.history[origin] = next;
  saveHistorySoon();
}

/* ---------------------------------------------------------------- status and badge */

/**
 * @param {Doc} doc
 */
function docStatus(doc) {
  const overrides = state.overrides[doc.origin];
  return pageStatus({
    signedIn: state.token !== null,
    monetized: doc.links.some((l) => validPointer(l.href) !== null),
    // Still connecting for the first time counts as up (the status says "starting"); only a
    // failed attempt makes the service unreachable.
    connected: socket.connected || state.connectionError === null,
    globalPaused: state.settings?.paused ?? false,
    siteDisabled: overrides?.disabled ?? false,
    idle: state.idle,
    page: doc,
    serverState: doc.serverState,
    error: doc.error,
  });
}

/**
 * The documents of a tab, the one that speaks for the tab first (the one streaming, else the
 * top frame, else the first frame).
 * @param {number} tabId
 */
export function tabDocs(tabId) {
  const docs = Object.values(state.docs).filter((d) => d.tabId === tabId);
  docs.sort((a, b) => Number(b.sid !== null) - Number(a.sid !== null) || a.frameId - b.frameId);
  return docs;
}

/** @param {number | null} tabId */
export function tabSummary(tabId) {
  const docs = tabId === null ? [] : tabDocs(tabId);
  const main = docs[0];
  const status = main
    ? docStatus(main)
    : pageStatus({
        signedIn: state.token !== null,
        monetized: false,
        connected: socket.connected,
        globalPaused: false,
        siteDisabled: false,
        idle: state.idle,
        page: { visible: true, focused: true, frozen: false },
        serverState: null,
      });
  const override = main ? state.overrides[main.origin] : undefined;
  const scale = state.settings?.scale ?? state.money?.scale ?? null;
  let text = statusText(status);
  if (main?.error) text = `Not paying: the service refused this page (${main.error}).`;
  return {
    tabId,
    origin: main?.origin ?? null,
    state: status.state,
    reason: status.reason,
    text,
    sent: docs.reduce((sum, d) => addMinor(sum, d.sent), '0'),
    siteEnabled: !(override?.disabled ?? false),
    siteRate: override?.rate != null && scale !== null ? formatMinor(override.rate, scale) : '',
  };
}

/** @type {Map<number, string>} */
const badges = new Map();

function updateBadges() {
  const tabIds = new Set([...badges.keys(), ...Object.values(state.docs).map((d) => d.tabId)]);
  for (const tabId of tabIds) {
    const summary = tabSummary(tabId);
    const text = summary.state === 'streaming' ? 'ON' : summary.state === 'error' ? '!' : '';
    const key = `${text}|${summary.text}`;
    if (badges.get(tabId) === key) continue;
    if (text === '' && !state.docs[`${tabId}:0`] && !tabDocs(tabId).length) badges.delete(tabId);
    else badges.set(tabId, key);
    const color = summary.state === 'streaming' ? '#1a7f37' : '#c62828';
    const ignore = () => {};
    chrome.action.setBadgeText({ tabId, text }).catch(ignore);
    chrome.action.setBadgeBackgroundColor({ tabId, color }).catch(ignore);
    chrome.action.setTitle({ tabId, title: `Trickle — ${summary.text}` }).catch(ignore);
  }
}

function changed() {
  saveSoon();
  updateBadges();
}

/* ---------------------------------------------------------------- account */

/** @param {any} s @returns {Settings} */
function toSettings(s) {
  return {
    paused: s.paused === true,
    rate: String(s.rate_per_hour_minor),
    budget: String(s.monthly_budget_minor),
    currency: String(s.currency),
    scale: Number(s.scale),
  };
}

/** Fetch the reader's settings and site rules (after sign-in, reconnects, popup opens). */
export async function refreshAccount() {
  const auth = currentAuth();
  if (!auth) return;
  try {
    const [settings, overrides] = await Promise.all([
      callApi(state.serviceUrl, '/api/v1/me/settings', { auth }),
      callApi(state.serviceUrl, '/api/v1/me/site-overrides', { auth }),
    ]);
    if (state.token !== auth.token) return;
    state.settings = toSettings(settings);
    state.overrides = {};
    for (const o of overrides.overrides ?? []) {
      state.overrides[o.origin] = { rate: o.rate_per_hour_minor ?? null, disabled: o.disabled === true };
    }
    state.settingsFetchedAt = Date.now();
    changed();
  } catch (error) {
    if (error instanceof ApiError && (error.code === 'unauthenticated' || error.code === 'session_origin_mismatch')) {
      await signOutLocally();
    }
  }
}

/**
 * @param {'sign-in' | 'sign-up'} how
 * @param {string} email
 * @param {string} password
 */
export async function signIn(how, email, password) {
  const path = how === 'sign-in' ? '/api/v1/sessions' : '/api/v1/accounts';
  const base = state.serviceUrl;
  const session = await callApi(base, path, { method: 'POST', body: { email, password } });
  if (typeof session.token !== 'string') throw new ApiError('bad_response', 'The service gave no token.', 0);
  /** @type {import('./api.js').Auth} */
  const issued = { token: session.token, origin: /** @type {string} */ (httpOrigin(base)) };
  if (state.serviceUrl !== base) {
    // The service URL changed while the service answered: this session is the old service's.
    void revoke(base, issued);
    throw new ApiError('session_origin_mismatch', 'The service URL changed while signing in: sign in again.', 0);
  }
  state.token = issued.token;
  state.tokenOrigin = issued.origin;
  state.email = typeof session.user?.email === 'string' ? session.user.email : email;
  state.connectionError = null;
  await refreshAccount();
  connect();
  reconcileAll();
  return { email: state.email };
}

export async function signOut() {
  const auth = currentAuth();
  const base = state.serviceUrl;
  await signOutLocally();
  if (auth) await revoke(base, auth);
  return {};
}

/**
 * End a session at the service that issued it (best effort: it is forgotten here either way).
 * @param {string} base
 * @param {import('./api.js').Auth} auth
 */
async function revoke(base, auth) {
  try {
    await callApi(base, '/api/v1/sessions/current', { method: 'DELETE', auth });
  } catch {
    // unreachable, or already ended: nothing more to do
  }
}

/**
 * Forget the session here: streams stopped, socket closed, token out of memory at once (before
 * the first await) and out of chrome.storage.session when the returned promise settles.
 */
async function signOutLocally() {
  for (const sid of Object.keys(state.streams)) socket.send({ type: 'stop', sid });
  socket.stop();
  state.streams = {};
  state.pending = {};
  for (const doc of Object.values(state.docs)) {
    doc.sid = null;
    doc.ref = null;
    doc.serverState = null;
    doc.lastActive = null;
  }
  state.token = null;
  state.tokenOrigin = null;
  state.email = null;
  state.money = null;
  state.settings = null;
  state.overrides = {};
  state.connectionError = null;
  changed();
  await chrome.storage.session.set({ auth: null });
}

/** The session, or ApiError signed_out. */
export function requireAuth() {
  const auth = currentAuth();
  if (!auth) throw new ApiError('signed_out', 'You are signed out: sign in first.', 401);
  return auth;
}

/** @param {string} code */
export async function redeem(code) {
  const auth = requireAuth();
  const result = await callApi(state.serviceUrl, '/api/v1/vouchers/redeem', {
    method: 'POST',
    auth,
    body: { code: code.trim() },
    idempotencyKey: crypto.randomUUID(),
  });
  if (state.money) state.money = { ...state.money, balance: String(result.balance_minor) };
  socket.send({ type: 'balance' });
  changed();
  return {
    amount: String(result.amount_minor),
    balance: String(result.balance_minor),
    currency: String(result.currency),
    scale: Number(result.scale),
  };
}

/** @param {Record<string, unknown>} body */
async function putSettings(body) {
  const auth = requireAuth();
  const settings = await callApi(state.serviceUrl, '/api/v1/me/settings', { method: 'PUT', auth, body });
  state.settings = toSettings(settings);
  socket.send({ type: 'balance' });
  reconcileAll();
  return state.settings;
}

/** @param {boolean} paused */
export async function setPaused(paused) {
  return putSettings({ paused });
}

export async function currentScale() {
  if (!state.settings) await refreshAccount();
  if (!state.settings) throw new ApiError('signed_out', 'You are signed out: sign in first.', 401);
  return state.settings.scale;
}

/**
 * @param {string} rate  major units
 * @param {string} budget  major units
 */
export async function setLimits(rate, budget) {
  requireAuth();
  const scale = await currentScale();
  /** @type {Record<string, string>} */
  const body = {};
  if (rate.trim()) body.rate_per_hour_minor = majorToMinor(rate, scale);
  if (budget.trim()) body.monthly_budget_minor = majorToMinor(budget, scale);
  return putSettings(body);
}

/**
 * Turn the tab's site on or off, and set or clear its own rate.
 * @param {number} tabId
 * @param {boolean} enabled
 * @param {string | null} rate  major units, null or blank for none
 */
export async function setSite(tabId, enabled, rate) {
  const auth = requireAuth();
  const origin = tabDocs(tabId)[0]?.origin;
  if (!origin) throw new ApiError('not_monetized', 'This tab has no monetized page.', 400);
  const scale = await currentScale();
  const rateMinor = rate && rate.trim() ? majorToMinor(rate, scale) : null;
  if (enabled && rateMinor === null) {
    try {
      await callApi(state.serviceUrl, '/api/v1/me/site-overrides', { method: 'DELETE', auth, body: { origin } });
    } catch (error) {
      if (!(error instanceof ApiError && error.code === 'not_found')) throw error;
    }
    delete state.overrides[origin];
  } else {
    const rule = await callApi(state.serviceUrl, '/api/v1/me/site-overrides', {
      method: 'PUT',
      auth,
      body: { origin, rate_per_hour_minor: rateMinor, disabled: !enabled },
    });
    state.overrides[origin] = { rate: rule.rate_per_hour_minor ?? null, disabled: rule.disabled === true };
  }
  reconcileAll();
  return tabSummary(tabId);
}

/**
 * A one-time payment (purchase or tip) went through: count it in the site's history (its total
 * and its one-time part) and take the service's new balance and month figures.
 * @param {string} origin
 * @param {string} amountMinor
 * @param {{balance_minor?: unknown, month_spent_minor?: unknown, month_budget_minor?: unknown}} answer
 */
export function recordOneTime(origin, amountMinor, answer) {
  addToHistory(origin, amountMinor, true);
  if (state.money && isMinor(answer.balance_minor) && isMinor(answer.month_spent_minor) && isMinor(answer.month_budget_minor)) {
    state.money = {
      ...state.money,
      balance: answer.balance_minor,
      monthSpent: answer.month_spent_minor,
      monthBudget: answer.month_budget_minor,
    };
  }
  socket.send({ type: 'balance' });
  changed();
}

/** Ask the service for the reader's funds now: money came in elsewhere (a card top-up). */
export function requestBalance() {
  socket.send({ type: 'balance' });
}

/** Everything the popup shows. @param {number | null} tabId */
export function popupState(tabId) {
  if (state.token && Date.now() - state.settingsFetchedAt > 10_000) {
    state.settingsFetchedAt = Date.now();
    void refreshAccount();
  }
  const history = Object.entries(state.history)
    .map(([origin, entry]) => ({ origin, minor: entry.minor, oneTime: entry.oneTime ?? '0', updated: entry.updated }))
    .sort((a, b) => b.updated - a.updated);
  return {
    signedIn: state.token !== null,
    email: state.email,
    serviceUrl: state.serviceUrl,
    connected: socket.connected,
    connectionError: state.token && !socket.connected ? state.connectionError : null,
    money: state.money,
    settings: state.settings,
    tab: tabSummary(tabId),
    history,
  };
}

export function optionsState() {
  const s = state.settings;
  return {
    serviceUrl: state.serviceUrl,
    signedIn: state.token !== null,
    currency: s?.currency ?? null,
    rate: s ? formatMinor(s.rate, s.scale) : '',
    budget: s ? formatMinor(s.budget, s.scale) : '',
  };
}
