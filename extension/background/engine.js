/// <reference types="chrome" />
// The background's surface for the service worker: start-up, what the popup and options pages
// show, and the dispatcher's calls gathered from the modules that own them (docs/extension.md).

import { formatMinor } from '../shared/amounts.js';
import { connect, refreshAccount } from './account.js';
import { socket } from './socket.js';
import { restore, state } from './state.js';
import { changed, tabSummary } from './status.js';
import { removeTab } from './streams.js';
import * as wallet from './tokens.js';

export {
  currentScale,
  keepAlive,
  recordOneTime,
  redeem,
  refreshAccount,
  serviceUrlChanged,
  setLimits,
  privatePaymentsChanged,
  setPrivatePayments,
  setPaused,
  setSite,
  signIn,
  signOut,
} from './account.js';
export { DEFAULT_SERVICE_URL, requireAuth, state } from './state.js';
export { tabDocs, tabSummary } from './status.js';
export { pageMessage, removeTab, setIdle } from './streams.js';

/** The popup asks for fresh settings at most this often. */
const SETTINGS_MAX_AGE_MS = 10_000;

/** Load what a previous life of the worker left, then connect. */
export async function load() {
  await restore();
  await wallet.load();
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

/** Everything the popup shows. @param {number | null} tabId */
export function popupState(tabId) {
  if (state.token && Date.now() - state.settingsFetchedAt > SETTINGS_MAX_AGE_MS) {
    state.settingsFetchedAt = Date.now();
    void refreshAccount();
  }
  const history = Object.entries(state.history)
    .map(([origin, entry]) => ({ origin, minor: entry.minor, oneTime: entry.oneTime ?? '0', private: entry.private ?? '0', updated: entry.updated }))
    .sort((a, b) => b.updated - a.updated);
  const money = state.money;
  // The month's budget is spent: a stream says so, or the figures do.
  const budgetReached =
    state.token !== null &&
    (Object.values(state.docs).some((d) => d.serverState === 'budget_exhausted') ||
      (money !== null && BigInt(money.monthSpent) >= BigInt(money.monthBudget)));
  return {
    signedIn: state.token !== null,
    email: state.email,
    budgetReached,
    serviceUrl: state.serviceUrl,
    connected: socket.connected,
    connectionError: state.token && !socket.connected ? state.connectionError : null,
    money: state.money,
    settings: state.settings,
    tab: tabSummary(tabId),
    history,
    tokens: state.token ? wallet.summary() : null,
  };
}

export function optionsState() {
  const s = state.settings;
  return {
    serviceUrl: state.serviceUrl,
    signedIn: state.token !== null,
    currency: s?.currency ?? null,
    scale: s?.scale ?? null,
    rate: s ? formatMinor(s.rate, s.scale) : '',
    budget: s ? formatMinor(s.budget, s.scale) : '',
    privatePayments: state.privatePayments,
    tokenReserve: wallet.wallets.reserve,
  };
}

/**
 * The tokens to keep (options page).
 * @param {string} text  a whole number as typed
 */
export async function setTokenReserve(text) {
  const reserve = /^[0-9]{1,6}$/.test(text.trim()) ? Number(text.trim()) : NaN;
  await wallet.setReserve(reserve);
  return optionsState();
}
