/// <reference types="chrome" />
// The reader's session and account: sign-in and sign-out bound to the service origin that issued
// the token, the stream socket's life (it follows the session), and the account calls of the
// HTTP API (settings, site rules, vouchers, what a one-time payment changed).

import { isMinor, majorToMinor } from '../shared/amounts.js';
import { PASSWORD_MIN_CHARS } from '../shared/sentences.js';
import { httpOrigin, serviceUrls } from '../shared/links.js';
import { ApiError, callApi } from './api.js';
import { endsSession } from './protocol.js';
import { connectPrivate, pokePrivate } from './private.js';
import { handleSocketEvents, socket } from './socket.js';
import { addToHistory, currentAuth, requireAuth, serviceBase, signedOutError, state } from './state.js';
import { changed, tabDocs, tabSummary } from './status.js';
import { connectionLost, handleServerMessage, reconcileAll, resumeAll, stopAll } from './streams.js';
import * as wallet from './tokens.js';

handleSocketEvents({
  onWelcome: (welcome) => {
    state.connectionError = null;
    state.money = welcome.money;
    resumeAll();
    void refreshAccount();
    changed();
  },
  onMessage: (message) => handleServerMessage(message),
  onDown: (code, willRetry) => {
    connectionLost();
    if (endsSession(code)) {
      // The token is unknown, expired or revoked (at sign-in or while open): signed out.
      void signOutLocally();
      return;
    }
    state.connectionError = willRetry ? 'service_unreachable' : 'connection_refused';
    changed();
  },
});

/* ---------------------------------------------------------------- session and socket */

/**
 * Be connected while signed in, to the service that issued the token (and, with private payments
 * on, its anonymous socket too); closed otherwise. The wallet looks at itself while signed in.
 */
export function connect() {
  const auth = currentAuth();
  connectPrivate();
  if (!auth) {
    socket.stop();
    wallet.stopChecks();
    return;
  }
  wallet.ensureChecks();
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
    pokePrivate();
  }
}

/**
 * Private payments on or off (options page): stored, then applied — the streams of the other way
 * end and the pages are paid this way from now on.
 * @param {boolean} enabled
 */
export async function setPrivatePayments(enabled) {
  await wallet.setPrivate(enabled);
  return privatePaymentsChanged();
}

/** chrome.storage.local's `privatePayments` changed (or was just stored): apply what it holds now. */
export async function privatePaymentsChanged() {
  const { privatePayments } = await chrome.storage.local.get(['privatePayments']);
  if (typeof privatePayments === 'boolean') wallet.applyPrivate(privatePayments);
  connect();
  reconcileAll();
  return { privatePayments: state.privatePayments };
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

/**
 * @param {'sign-in' | 'sign-up'} how
 * @param {string} email
 * @param {string} password
 */
export async function signIn(how, email, password) {
  if (how === 'sign-up' && [...password].length < PASSWORD_MIN_CHARS) {
    throw new ApiError('validation_failed', `password: at least ${PASSWORD_MIN_CHARS} characters`, 0, {
      field: 'password',
      min: PASSWORD_MIN_CHARS,
    });
  }
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
  wallet.signedIn();
  reconcileAll();
  return { email: state.email };
}

export async function signOut() {
  const auth = currentAuth();
  const base = state.serviceUrl;
  if (auth) {
    // Unspent tokens go back to the balance while the session still works.
    stopAll();
    await wallet.refundAll();
  }
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
  stopAll();
  socket.stop();
  state.token = null;
  state.tokenOrigin = null;
  state.email = null;
  state.money = null;
  state.settings = null;
  state.overrides = {};
  state.connectionError = null;
  connectPrivate();
  wallet.stopChecks();
  changed();
  await chrome.storage.session.set({ auth: null });
}

/* ---------------------------------------------------------------- account calls */

/** @param {any} s @returns {import('./state.js').Settings} */
function toSettings(s) {
  return {
    paused: s.paused === true,
    rate: String(s.rate_per_hour_minor),
    budget: String(s.monthly_budget_minor),
    currency: String(s.currency),
    scale: Number(s.scale),
    maxRate: isMinor(s.max_rate_per_hour_minor) ? s.max_rate_per_hour_minor : null,
    maxBudget: isMinor(s.max_monthly_budget_minor) ? s.max_monthly_budget_minor : null,
  };
}

/**
 * A rate or budget the reader typed, checked against the most the service takes before it is
 * sent, so that the reader's sentence can name the limit.
 * @param {'rate_per_hour_minor' | 'monthly_budget_minor'} field
 * @param {string} typed  major units
 * @param {number} scale
 * @param {string | null} max
 */
function limitMinor(field, typed, scale, max) {
  const value = majorToMinor(typed, scale);
  if (max !== null && BigInt(value) > BigInt(max)) {
    throw new ApiError('validation_failed', `${field}: must be 0..${max} minor units, got ${value}`, 422, { field, max, value });
  }
  return value;
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
  if (!state.settings) throw signedOutError();
  return state.settings.scale;
}

/**
 * @param {string} rate  major units
 * @param {string} budget  major units
 */
export async function setLimits(rate, budget) {
  requireAuth();
  const scale = await currentScale();
  const settings = state.settings;
  /** @type {Record<string, string>} */
  const body = {};
  if (rate.trim()) body.rate_per_hour_minor = limitMinor('rate_per_hour_minor', rate, scale, settings?.maxRate ?? null);
  if (budget.trim()) body.monthly_budget_minor = limitMinor('monthly_budget_minor', budget, scale, settings?.maxBudget ?? null);
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
  const rateMinor = rate && rate.trim() ? limitMinor('rate_per_hour_minor', rate, scale, state.settings?.maxRate ?? null) : null;
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
 * and its one-time part, and its private part when paid with tokens) and take the service's new
 * balance and month figures (an identified payment's answer has them; a private one's has not).
 * @param {string} origin
 * @param {string} amountMinor
 * @param {{balance_minor?: unknown, month_spent_minor?: unknown, month_budget_minor?: unknown}} answer
 * @param {boolean} [privately]
 */
export function recordOneTime(origin, amountMinor, answer, privately = false) {
  addToHistory(origin, amountMinor, true, privately);
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
