/// <reference types="chrome" />
// Each tab's status (what the popup says and the toolbar badge shows), and changed(), which
// every change of the background's state ends with: save it soon and redraw the badges.

import { addMinor, formatMinor } from '../shared/amounts.js';
import { pageStatus } from '../shared/attention.js';
import { statusSentence } from '../shared/sentences.js';
import { validPointer } from '../shared/links.js';
import { privateSocket, socket } from './socket.js';
import { knownScale, saveSoon, state } from './state.js';

const BADGE_COLOR_STREAMING = '#1a7f37';
const BADGE_COLOR_OTHER = '#c62828';

/**
 * The page's error: the service's refusal of its stream, else (paying privately, with no token
 * left) why the wallet cannot get any.
 * @param {import('./state.js').Doc} doc
 */
function docError(doc) {
  return doc.error ?? (state.privatePayments && doc.privateId ? state.walletError : null);
}

/**
 * @param {import('./state.js').Doc} doc
 */
function docStatus(doc) {
  const overrides = state.overrides[doc.origin];
  return pageStatus({
    signedIn: state.token !== null,
    monetized: doc.links.some((l) => validPointer(l.href) !== null),
    // Still connecting for the first time counts as up (the status says "starting"); only a
    // failed attempt makes the service unreachable. In private mode, the anonymous socket pays.
    connected: state.privatePayments ? privateSocket.connected || privateSocket.lastCloseCode === 0 : socket.connected || state.connectionError === null,
    globalPaused: state.settings?.paused ?? false,
    siteDisabled: overrides?.disabled ?? false,
    idle: state.idle,
    page: doc,
    serverState: doc.serverState,
    error: docError(doc),
  });
}

/**
 * The documents of a tab, the one that speaks for the tab first (the one streaming, else the
 * top frame, else the first frame).
 * @param {number} tabId
 */
export function tabDocs(tabId) {
  const docs = Object.values(state.docs).filter((d) => d.tabId === tabId);
  const paying = (/** @type {import('./state.js').Doc} */ d) => Number(d.sid !== null || Boolean(d.privateId));
  docs.sort((a, b) => paying(b) - paying(a) || a.frameId - b.frameId);
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
  const scale = knownScale();
  const asset = state.money ?? state.settings;
  const error = main ? docError(main) : null;
  const text = statusSentence(status, { error, money: state.money, asset }).text;
  // The hourly rate this tab's site is paid at: its own (a site override), else the reader's.
  const ownRate = override?.rate ?? null;
  const rate = ownRate ?? state.settings?.rate ?? null;
  return {
    tabId,
    origin: main?.origin ?? null,
    state: status.state,
    reason: status.reason,
    error,
    text,
    sent: docs.reduce((sum, d) => addMinor(sum, d.sent), '0'),
    siteEnabled: !(override?.disabled ?? false),
    siteRate: ownRate !== null && scale !== null ? formatMinor(ownRate, scale) : '',
    rate: rate === null ? null : { minor: rate, source: ownRate !== null ? 'site' : 'default' },
  };
}

/**
 * What each tab's badge shows now (text and title), so an unchanged badge is not redrawn.
 * @type {Map<number, string>}
 */
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
    const color = summary.state === 'streaming' ? BADGE_COLOR_STREAMING : BADGE_COLOR_OTHER;
    const ignore = () => {};
    chrome.action.setBadgeText({ tabId, text }).catch(ignore);
    chrome.action.setBadgeBackgroundColor({ tabId, color }).catch(ignore);
    chrome.action.setTitle({ tabId, title: `Trickle — ${summary.text}` }).catch(ignore);
  }
}

/** The state changed: save it soon and bring the badges in line. */
export function changed() {
  saveSoon();
  updateBadges();
}
