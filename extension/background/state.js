/// <reference types="chrome" />
// What the background knows and keeps: the one state object, its types, and how it is saved to
// and restored from chrome.storage (session: token, streams, pages; local: service URL, history).

import { addMinor } from '../shared/amounts.js';
import { httpOrigin, serviceUrls } from '../shared/links.js';
import { ApiError } from './api.js';

export const DEFAULT_SERVICE_URL = 'http://127.0.0.1:8420';
/** docs/extension.md promises the session area is written within this long of a change. */
const SAVE_DELAY_MS = 50;
/** The history changes with every receipt: it is written less often. */
const HISTORY_SAVE_DELAY_MS = 500;

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
 * @property {string | null} [privateId]  its current private stream (the client's id), in private mode
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
/**
 * The reader's settings at the service; `maxRate` and `maxBudget` are the most it takes (minor
 * units, null when it did not say).
 * @typedef {{paused: boolean, rate: string, budget: string, currency: string, scale: number,
 *   maxRate: string | null, maxBudget: string | null}} Settings
 */
/** @typedef {{rate: string | null, disabled: boolean}} Override */
/**
 * What the reader paid a site: in all (`minor`), its one-time part, and its private part (paid with
 * tokens, streamed or one-time).
 * @typedef {{minor: string, updated: number, oneTime?: string, oneTimeCount?: number, private?: string}} HistoryEntry
 */
/** @typedef {{docKey: string, pointer: string, binding: string | null, linkId: string}} PendingStart */

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
  /** @type {Record<string, PendingStart>} */
  pending: {},
  idle: false,
  /** Private payments (tokens, the anonymous socket) instead of identified ones: tokens.js loads it. */
  privatePayments: false,
  /** @type {string | null} why the wallet, empty, cannot get tokens (token_key_mismatch, tokens_unavailable) */
  walletError: null,
  /** @type {string | null} */
  connectionError: null,
  refCounter: 0,
  settingsFetchedAt: 0,
};

/** The session, with the origin it belongs to; null while signed out. */
export function currentAuth() {
  return state.token && state.tokenOrigin ? { token: state.token, origin: state.tokenOrigin } : null;
}

/** What a call that needs the session throws while signed out. */
export function signedOutError() {
  return new ApiError('signed_out', 'You are signed out: sign in first.', 401);
}

/** The session, or ApiError signed_out. */
export function requireAuth() {
  const auth = currentAuth();
  if (!auth) throw signedOutError();
  return auth;
}

/** The reader's asset scale as far as it is known (settings, else the stream's money), or null. */
export function knownScale() {
  return state.settings?.scale ?? state.money?.scale ?? null;
}

/**
 * The stored service URL, normalized; the default when unset or unusable.
 * @param {unknown} value
 */
export function serviceBase(value) {
  if (typeof value === 'string' && value) {
    try {
      return serviceUrls(value).base;
    } catch {
      return DEFAULT_SERVICE_URL;
    }
  }
  return DEFAULT_SERVICE_URL;
}

/* ---------------------------------------------------------------- history */

/**
 * Count a payment in the site's history entry: its total always, its one-time part (amount and
 * count) for a purchase or tip, its private part for one paid with tokens. Every part the entry
 * already has is kept.
 * @param {string} origin
 * @param {string | bigint} amountMinor
 * @param {boolean} oneTime
 * @param {boolean} [privately]
 */
export function addToHistory(origin, amountMinor, oneTime, privately = false) {
  const entry = state.history[origin] ?? { minor: '0', updated: 0 };
  /** @type {HistoryEntry} */
  const next = { ...entry, minor: addMinor(entry.minor, amountMinor), updated: Date.now() };
  if (oneTime) {
    next.oneTime = addMinor(entry.oneTime ?? '0', amountMinor);
    next.oneTimeCount = (entry.oneTimeCount ?? 0) + 1;
  }
  if (privately) next.private = addMinor(entry.private ?? '0', amountMinor);
  state.history[origin] = next;
  saveHistorySoon();
}

/* ---------------------------------------------------------------- persistence */

/** @type {ReturnType<typeof setTimeout> | null} */
let saveTimer = null;
/** @type {ReturnType<typeof setTimeout> | null} */
let historyTimer = null;

/** Write what must outlive the worker to chrome.storage.session (coalesced). */
export function saveSoon() {
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
  }, SAVE_DELAY_MS);
}

function saveHistorySoon() {
  if (historyTimer) return;
  historyTimer = setTimeout(() => {
    historyTimer = null;
    void chrome.storage.local.set({ history: state.history });
  }, HISTORY_SAVE_DELAY_MS);
}

/** Read back what a previous life of the worker saved; nothing is sent anywhere yet. */
export async function restore() {
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
    doc.privateId = null; // private streams live as long as their socket: started again
  }
}
