/// <reference types="chrome" />
// One-time payments in the background: a page's `payment-request` (forwarded by its content
// script), the reader's approval in an extension-owned window (or auto-approval under the
// site's limit and the daily cap), the `POST /api/v1/payments` call with one Idempotency-Key
// for all its retries, and the `payment-result` back to the one document that asked. Also the
// popup's tip. See docs/extension.md, "One-time payments".

import { formatMinor } from '../shared/amounts.js';
import { chooseLink } from '../shared/links.js';
import {
  DEFAULT_DAILY_CAP,
  addSpent,
  autoApprove,
  dayKey,
  readerAmount,
  requestMinor,
  resultCode,
  retryable,
  spentOn,
  tipOrderRef,
} from '../shared/payments.js';
import { tokensForPrice } from '../shared/tokens.js';
import { currentScale, recordOneTime } from './account.js';
import { ApiError, callApi } from './api.js';
import { knownScale, requireAuth, signedOutError, state } from './state.js';
import { tabDocs } from './status.js';
import * as wallet from './tokens.js';

/**
 * @typedef {object} Pending
 * @property {string} key  the extension's own id of the request (the approval window's ?request=)
 * @property {import('../shared/payments.js').PaymentRequest} request
 * @property {number} tabId
 * @property {number} frameId
 * @property {string | null} documentId
 * @property {string} page  the content script's id of the document
 * @property {string} origin  from the message sender, never from the page
 * @property {'checking' | 'prompt' | 'paying'} status
 * @property {number | null} windowId
 * @property {string} amountMinor
 * @property {string} currency
 * @property {number} scale
 * @property {boolean} auto
 * @property {string} idempotencyKey  one key for every attempt of this payment
 * @property {Way} [way]  how it is paid (decided before the reader is asked)
 */
/**
 * How a one-time payment is paid: `private` with `count` tokens (`paidMinor` = count × the token
 * value; `remainderMinor`, under one token's value, goes to the site), or `identified` from the
 * reader's account — with `count` and `held` when private payments are on and too few tokens are
 * held (then `count` says how many it would take).
 * @typedef {{kind: 'private' | 'identified', count: number, held: number, paidMinor: string, remainderMinor: string,
 *   valueMinor: string | null, sent: import('../shared/tokens.js').Token[] | null}} Way
 */
/**
 * @typedef {{at: number, kind: 'purchase' | 'tip', origin: string, payee: string, amountMinor: string,
 *   currency: string, scale: number, orderRef: string, description: string, auto: boolean, sid: string,
 *   receipt: string, way?: 'private' | 'identified'}} OneTimeRecord
 */
/** @typedef {{id: string, ok: true, receipt: string, amountMinor: string, currency: string, scale: number}} OkResult */
/**
 * `code` is the page's (docs/extension.md, the page contract); `details.cause` keeps the service's
 * own code for the reader's sentence in the approval window, and never goes to the page.
 * @typedef {{id: string, ok: false, code: string, message: string, details?: Record<string, unknown> | null}} FailResult
 */

/** At most this many approval windows at once (all pages together); more requests are `busy`. */
export const MAX_PROMPTS = 5;
/** Delays between attempts of one payment call (same Idempotency-Key), after a network failure. */
export const RETRY_DELAYS_MS = [500, 1500, 3000];
const RECENT_MAX = 50;
/** The approval window stays this long after the reader's click, showing the outcome. */
const CLOSE_AFTER_MS = 1000;

export const oneTime = {
  /** @type {Record<string, string>} origin → auto-approve limit in minor units */
  autoApprove: {},
  /** @type {string | null} minor units; null = DEFAULT_DAILY_CAP */
  dailyCap: null,
  /** @type {import('../shared/payments.js').DailySpent | null} */
  autoSpent: null,
  /** @type {OneTimeRecord[]} newest first */
  recent: [],
};
/** @type {Record<string, Pending>} */
export const pending = {};

function saveLocal() {
  void chrome.storage.local.set({
    autoApprove: oneTime.autoApprove,
    dailyCap: oneTime.dailyCap,
    autoSpent: oneTime.autoSpent,
    oneTimePayments: oneTime.recent,
  });
}

function savePending() {
  void chrome.storage.session.set({ payments: pending });
}

/** Load the settings and what a previous life of the worker left pending. */
export async function load() {
  const [local, session] = await Promise.all([
    chrome.storage.local.get(['autoApprove', 'dailyCap', 'autoSpent', 'oneTimePayments']),
    chrome.storage.session.get(['payments']),
  ]);
  const a = /** @type {any} */ (local);
  if (a.autoApprove && typeof a.autoApprove === 'object') oneTime.autoApprove = a.autoApprove;
  if (typeof a.dailyCap === 'string') oneTime.dailyCap = a.dailyCap;
  if (a.autoSpent && typeof a.autoSpent === 'object') oneTime.autoSpent = a.autoSpent;
  if (Array.isArray(a.oneTimePayments)) oneTime.recent = a.oneTimePayments;
  const left = /** @type {Record<string, Pending> | undefined} */ (/** @type {any} */ (session).payments);
  for (const p of Object.values(left ?? {})) {
    pending[p.key] = p;
    if (p.status === 'paying') {
      void execute(p); // the call was cut off with the worker: again, with the same key (and tokens)
    } else if (p.status === 'prompt' && p.windowId !== null) {
      chrome.windows.get(p.windowId).catch(() => finish(p, failure(p, 'declined', 'The approval window was closed.')));
    } else {
      finish(p, failure(p, 'service_unreachable', 'The extension restarted before the request was checked.'));
    }
  }
}

/**
 * @param {Pending | {request: {id: string}}} p
 * @param {string} code
 * @param {string} message
 * @returns {FailResult}
 */
function failure(p, code, message) {
  return { id: p.request.id, ok: false, code, message };
}

/**
 * Send the page its result: to that tab, frame and document only.
 * @param {{tabId: number, frameId: number, documentId: string | null, page: string}} to
 * @param {OkResult | FailResult} result
 */
function sendResult(to, result) {
  /** @type {{frameId: number, documentId?: string}} */
  const target = { frameId: to.frameId };
  if (to.documentId) target.documentId = to.documentId;
  chrome.tabs.sendMessage(to.tabId, { type: 'trickle/payment-result', page: to.page, result }, target).catch(() => {
    // the document went away: nobody to tell (the payment, if made, is in the history)
  });
}

/**
 * End a request: forget it, answer the page (unless `result` is null), close its window.
 * @param {Pending} p
 * @param {OkResult | FailResult | null} result
 * @param {number} [closeAfterMs]
 */
function finish(p, result, closeAfterMs = 0) {
  delete pending[p.key];
  savePending();
  void wallet.release(tokensRef(p.key)); // tokens set aside and not sent are held again
  if (result) sendResult(p, result);
  if (p.windowId !== null) {
    const windowId = p.windowId;
    const close = () => void chrome.windows.remove(windowId).catch(() => {});
    if (closeAfterMs > 0) setTimeout(close, closeAfterMs);
    else close();
  }
}

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The wallet's name of the tokens a payment uses. @param {string} key */
const tokensRef = (key) => `pay:${key}`;

/**
 * Decide how a payment of `amountMinor` is paid. With private payments on and enough tokens held,
 * the tokens are set aside for it at once (so that streaming cannot spend them meanwhile).
 * @param {string} key  the payment's own key
 * @param {string} amountMinor
 * @returns {Promise<Way>}
 */
async function chooseWay(key, amountMinor) {
  const value = state.privatePayments ? wallet.tokenValue() : null;
  /** @type {Way} */
  const identified = { kind: 'identified', count: 0, held: 0, paidMinor: amountMinor, remainderMinor: '0', valueMinor: null, sent: null };
  if (!value || value.currency !== state.settings?.currency) return identified;
  const price = tokensForPrice(amountMinor, value.valueMinor);
  const base = { count: price.count, paidMinor: price.paidMinor, remainderMinor: price.remainderMinor, valueMinor: value.valueMinor, sent: null };
  if (await wallet.reserve(tokensRef(key), price.count)) return { kind: 'private', held: wallet.held(), ...base };
  return { ...identified, count: price.count, held: wallet.held(), valueMinor: value.valueMinor };
}

/**
 * POST /api/v1/private/payments: the tokens set aside, no session, no cookie (callApi sends
 * `credentials: "omit"` and, without `auth`, no Authorization header). Retried like postPayment
 * with the same key and the same tokens; a token the service refuses is dropped and the payment
 * asked once more with others under a new key.
 * @param {Record<string, unknown>} body
 * @param {Pending} p
 * @param {Way} way
 */
async function postPrivately(body, p, way) {
  const ref = tokensRef(p.key);
  for (let round = 0; ; round++) {
    way.sent ??= await wallet.sending(ref);
    if (!way.sent) {
      if (!(await wallet.reserve(ref, way.count)) || !(way.sent = await wallet.sending(ref))) {
        throw new ApiError('not_enough_tokens', 'The tokens for this payment are no longer held.', 0);
      }
    }
    savePending();
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const answer = await callApi(state.serviceUrl, '/api/v1/private/payments', {
            method: 'POST',
            body: { ...body, tokens: way.sent },
            idempotencyKey: p.idempotencyKey,
          });
          await wallet.spent(ref);
          return answer;
        } catch (error) {
          if (!(error instanceof ApiError) || !retryable(error) || attempt >= RETRY_DELAYS_MS.length) throw error;
          await sleep(RETRY_DELAYS_MS[attempt]);
        }
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (retryable(error)) {
        await wallet.giveBack(ref, { sent: true }); // may have been spent: only ever spent again
        throw error;
      }
      const index = Number(error.details?.index ?? NaN);
      if ((error.code === 'token_spent' || error.code === 'invalid_token') && round === 0) {
        await wallet.refused(ref, Number.isInteger(index) ? index : null);
        way.sent = null;
        p.idempotencyKey = crypto.randomUUID();
        continue;
      }
      await wallet.giveBack(ref, { sent: false }); // refused: nothing moved
      throw error;
    }
  }
}

/**
 * POST /api/v1/payments; on a network failure or a 5xx, the same call again with the same
 * Idempotency-Key (the service replays the first answer: one charge, one receipt).
 * @param {Record<string, unknown>} body
 * @param {string} idempotencyKey
 */
async function postPayment(body, idempotencyKey) {
  for (let attempt = 0; ; attempt++) {
    const auth = requireAuth();
    try {
      return await callApi(state.serviceUrl, '/api/v1/payments', { method: 'POST', auth, body, idempotencyKey });
    } catch (error) {
      if (!(error instanceof ApiError) || !retryable(error) || attempt >= RETRY_DELAYS_MS.length) throw error;
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  }
}

/**
 * @param {OneTimeRecord} record
 */
function remember(record) {
  oneTime.recent.unshift(record);
  oneTime.recent.length = Math.min(oneTime.recent.length, RECENT_MAX);
  saveLocal();
}

/**
 * Make the payment of an approved request and answer the page.
 * @param {Pending} p
 * @returns {Promise<OkResult | FailResult>}
 */
async function execute(p) {
  p.status = 'paying';
  savePending();
  /** @type {Record<string, unknown>} */
  const body = {
    payment_pointer: p.request.paymentPointer,
    origin: p.origin,
    amount_minor: p.amountMinor,
    currency: p.currency,
    order_ref: p.request.orderRef,
  };
  if (p.request.binding !== null) body.binding = p.request.binding;
  if (p.request.description !== '') body.description = p.request.description;
  const way = p.way ?? (await chooseWay(p.key, p.amountMinor));
  try {
    const answer = way.kind === 'private' ? await postPrivately(body, p, way) : await postPayment(body, p.idempotencyKey);
    if (typeof answer.receipt !== 'string' || answer.receipt === '') throw new ApiError('bad_response', 'The service gave no receipt.', 0);
    const amountMinor = String(answer.amount_minor ?? p.amountMinor);
    recordOneTime(p.origin, way.kind === 'private' ? way.paidMinor : amountMinor, answer, way.kind === 'private');
    remember({
      at: Date.now(),
      kind: 'purchase',
      origin: p.origin,
      payee: p.request.paymentPointer,
      amountMinor,
      currency: String(answer.currency ?? p.currency),
      scale: Number(answer.scale ?? p.scale),
      orderRef: p.request.orderRef,
      description: p.request.description,
      auto: p.auto,
      sid: String(answer.sid ?? ''),
      receipt: answer.receipt,
      way: way.kind,
    });
    /** @type {OkResult} */
    const result = {
      id: p.request.id,
      ok: true,
      receipt: answer.receipt,
      amountMinor,
      currency: String(answer.currency ?? p.currency),
      scale: Number(answer.scale ?? p.scale),
    };
    finish(p, result, CLOSE_AFTER_MS);
    return result;
  } catch (error) {
    const code = resultCode(error instanceof ApiError ? error.code : 'internal');
    if (p.auto) {
      // Nothing was spent: give the reservation back to today's cap.
      oneTime.autoSpent = addSpent(oneTime.autoSpent, dayKey(new Date()), -BigInt(p.amountMinor));
      saveLocal();
    }
    const message = error instanceof Error ? error.message : String(error);
    const result = failure(p, code, message);
    finish(p, result, 4000);
    const cause = error instanceof ApiError ? error.code : 'internal';
    return { ...result, details: { ...(error instanceof ApiError ? error.details : null), cause } };
  }
}

/** The daily cap in minor units at `scale`. @param {number} scale */
function dailyCapMinor(scale) {
  return oneTime.dailyCap ?? /** @type {string} */ (readerAmount(DEFAULT_DAILY_CAP, scale));
}

/**
 * A content script forwarded its page's payment request (already validated; sender checked).
 * @param {{page: string, request: import('../shared/payments.js').PaymentRequest}} message
 * @param {chrome.runtime.MessageSender} sender
 * @param {string | null} origin  the sender's http(s) origin
 */
export async function request(message, sender, origin) {
  const to = {
    tabId: /** @type {number} */ (sender.tab?.id),
    frameId: sender.frameId ?? 0,
    documentId: typeof sender.documentId === 'string' ? sender.documentId : null,
    page: message.page,
  };
  const { request: req } = message;
  if (!origin) return sendResult(to, failure({ request: req }, 'invalid_request', 'This page has no http(s) origin.'));
  const all = Object.values(pending);
  // Synchronously, before any await: one pending request per page, a few windows in all.
  if (all.some((p) => p.tabId === to.tabId && p.frameId === to.frameId && p.page === to.page) || all.length >= MAX_PROMPTS) {
    return sendResult(to, failure({ request: req }, 'busy', 'Another payment request of this page is waiting.'));
  }
  /** @type {Pending} */
  const p = {
    key: crypto.randomUUID(),
    request: req,
    ...to,
    origin,
    status: 'checking',
    windowId: null,
    amountMinor: '0',
    currency: req.currency,
    scale: 0,
    auto: false,
    idempotencyKey: crypto.randomUUID(),
  };
  pending[p.key] = p;
  savePending();
  if (!state.token) return finish(p, failure(p, 'signed_out', 'The reader is signed out of Trickle.'));
  try {
    p.scale = await currentScale();
  } catch (error) {
    const code = error instanceof ApiError ? resultCode(error.code) : 'service_unreachable';
    return finish(p, failure(p, code, error instanceof Error ? error.message : String(error)));
  }
  if (!pending[p.key]) return; // the page went away meanwhile
  const settings = state.settings;
  if (!settings || settings.currency !== req.currency) {
    return finish(p, failure(p, 'invalid_request', `currency: this reader pays in ${settings?.currency ?? 'another currency'}`));
  }
  try {
    p.amountMinor = requestMinor(req.amount, p.scale);
  } catch (error) {
    return finish(p, failure(p, 'invalid_request', `amount: ${error instanceof Error ? error.message : String(error)}`));
  }
  p.way = await chooseWay(p.key, p.amountMinor);
  if (!pending[p.key]) return void wallet.release(tokensRef(p.key));
  savePending();
  const today = dayKey(new Date());
  const decision = autoApprove({
    amountMinor: p.amountMinor,
    limitMinor: oneTime.autoApprove[origin] ?? null,
    capMinor: dailyCapMinor(p.scale),
    spent: oneTime.autoSpent,
    today,
  });
  if (decision.auto) {
    p.auto = true;
    oneTime.autoSpent = addSpent(oneTime.autoSpent, today, BigInt(p.amountMinor)); // reserved now: no race
    saveLocal();
    await execute(p);
    return;
  }
  p.status = 'prompt';
  savePending();
  try {
    const win = await chrome.windows.create({
      type: 'popup',
      url: chrome.runtime.getURL(`pages/approve.html?request=${encodeURIComponent(p.key)}`),
      width: 440,
      height: 560,
      focused: true,
    });
    if (!pending[p.key]) {
      if (win?.id !== undefined) void chrome.windows.remove(win.id).catch(() => {});
      return;
    }
    p.windowId = win?.id ?? null;
    savePending();
  } catch (error) {
    finish(p, failure(p, 'declined', `The approval window could not be opened: ${String(error)}`));
  }
}

/**
 * When the reader bought this order on this site before, as far as this extension remembers
 * (its own history: same origin and order reference), or null. A site ties a purchase to its own
 * visitor cookie, so in another browser (or after clearing cookies) the site asks again.
 * @param {string} origin
 * @param {string} orderRef
 * @returns {{at: number, amountMinor: string, currency: string, scale: number} | null}
 */
export function boughtBefore(origin, orderRef) {
  const found = oneTime.recent.find((r) => r.kind === 'purchase' && r.origin === origin && r.orderRef === orderRef);
  return found ? { at: found.at, amountMinor: found.amountMinor, currency: found.currency, scale: found.scale } : null;
}

/**
 * What the approval window shows.
 * @param {string} key
 */
export function details(key) {
  const p = pending[key];
  if (!p || p.status === 'checking') throw new ApiError('not_found', 'This payment request is no longer waiting.', 404);
  return {
    origin: p.origin,
    payee: p.request.paymentPointer,
    amountMinor: p.amountMinor,
    currency: p.currency,
    scale: p.scale,
    description: p.request.description,
    orderRef: p.request.orderRef,
    status: p.status,
    boughtBefore: boughtBefore(p.origin, p.request.orderRef),
    way: p.way
      ? { kind: p.way.kind, count: p.way.count, held: p.way.held, paidMinor: p.way.paidMinor, remainderMinor: p.way.remainderMinor, valueMinor: p.way.valueMinor }
      : null,
  };
}

/**
 * The reader clicked Approve or Decline in the approval window.
 * @param {string} key
 * @param {boolean} approve
 */
export async function decide(key, approve) {
  const p = pending[key];
  if (!p || p.status !== 'prompt') throw new ApiError('not_found', 'This payment request is no longer waiting.', 404);
  if (!approve) {
    finish(p, failure(p, 'declined', 'The reader declined the payment.'), CLOSE_AFTER_MS);
    return { ok: false, code: 'declined', message: 'Declined.' };
  }
  const result = await execute(p);
  return result.ok
    ? { ok: true, amountMinor: result.amountMinor, currency: result.currency, scale: result.scale, origin: p.origin, way: p.way?.kind ?? 'identified', paidMinor: p.way?.paidMinor ?? result.amountMinor }
    : { ok: false, code: result.code, message: result.message, details: result.details ?? null };
}

/**
 * A window was closed: closing an approval window declines its request.
 * @param {number} windowId
 */
export function windowClosed(windowId) {
  for (const p of Object.values(pending)) {
    if (p.windowId === windowId && p.status === 'prompt') {
      p.windowId = null;
      finish(p, failure(p, 'declined', 'The reader closed the approval window.'));
    }
  }
}

/**
 * The asking document is gone (navigation, tab closed): its prompt goes away unanswered. A
 * payment already being made completes (it is in the history).
 * @param {(p: Pending) => boolean} match
 */
function dropPrompts(match) {
  for (const p of Object.values(pending)) if (match(p) && p.status !== 'paying') finish(p, null);
}

/** @param {number} tabId */
export function tabClosed(tabId) {
  dropPrompts((p) => p.tabId === tabId);
}

/**
 * @param {number} tabId
 * @param {number} frameId
 * @param {string} page
 */
export function pageLeft(tabId, frameId, page) {
  dropPrompts((p) => p.tabId === tabId && p.frameId === frameId && p.page === page);
}

/**
 * Tip the current tab's site from the popup: its monetization link's payee, for its origin.
 * @param {number} tabId
 * @param {string} amount  major units, as typed
 */
export async function tip(tabId, amount) {
  requireAuth();
  const doc = tabDocs(tabId)[0];
  const link = doc ? chooseLink(doc.links, new Set(doc.refused)) : null;
  if (!doc || !link) throw new ApiError('not_monetized', 'This tab has no monetized page to tip.', 400);
  const scale = await currentScale();
  const settings = state.settings;
  if (!settings) throw signedOutError();
  const amountMinor = /** @type {string} */ (readerAmount(amount, scale, { positive: true }));
  const orderRef = tipOrderRef();
  const body = {
    payment_pointer: link.pointer,
    origin: doc.origin,
    amount_minor: amountMinor,
    currency: settings.currency,
    order_ref: orderRef,
    description: 'Tip from the Trickle popup',
  };
  /** @type {Pending} */
  const p = {
    key: crypto.randomUUID(),
    request: { id: 'tip', amount: '', currency: settings.currency, description: body.description, orderRef, paymentPointer: link.pointer, binding: null },
    tabId,
    frameId: doc.frameId,
    documentId: null,
    page: doc.page,
    origin: doc.origin,
    status: 'paying',
    windowId: null,
    amountMinor,
    currency: settings.currency,
    scale,
    auto: false,
    idempotencyKey: crypto.randomUUID(),
  };
  const way = await chooseWay(p.key, amountMinor);
  /** @type {any} */
  let answer;
  try {
    answer = way.kind === 'private' ? await postPrivately(body, p, way) : await postPayment(body, p.idempotencyKey);
  } finally {
    void wallet.release(tokensRef(p.key));
  }
  const paid = way.kind === 'private' ? way.paidMinor : String(answer.amount_minor ?? amountMinor);
  recordOneTime(doc.origin, paid, answer, way.kind === 'private');
  remember({
    at: Date.now(),
    kind: 'tip',
    origin: doc.origin,
    payee: link.pointer,
    amountMinor: paid,
    currency: settings.currency,
    scale,
    orderRef,
    description: body.description,
    auto: false,
    sid: String(answer.sid ?? ''),
    receipt: String(answer.receipt ?? ''),
    way: way.kind,
  });
  return { origin: doc.origin, payee: link.pointer, amount: paid, currency: settings.currency, scale, balance: String(answer.balance_minor ?? ''), way: way.kind };
}

/**
 * The tab's site's auto-approve limit for the popup: major units, '' = none.
 * @param {string | null} origin
 */
export function autoApproveFor(origin) {
  const scale = knownScale();
  const limit = origin ? oneTime.autoApprove[origin] : undefined;
  return limit && scale !== null ? formatMinor(limit, scale) : '';
}

/**
 * Set (or with a blank or zero limit, remove) the auto-approve limit of the tab's site.
 * @param {number} tabId
 * @param {string} limit  major units
 */
export async function setAutoApprove(tabId, limit) {
  requireAuth();
  const origin = tabDocs(tabId)[0]?.origin;
  if (!origin) throw new ApiError('not_monetized', 'This tab has no monetized page.', 400);
  const scale = await currentScale();
  const minor = readerAmount(limit, scale, { allowBlank: true });
  if (minor === null || BigInt(minor) === 0n) delete oneTime.autoApprove[origin];
  else oneTime.autoApprove[origin] = minor;
  saveLocal();
  return { origin, limitMinor: oneTime.autoApprove[origin] ?? null, limit: autoApproveFor(origin) };
}

/** @param {string} origin */
export function clearAutoApprove(origin) {
  delete oneTime.autoApprove[origin];
  saveLocal();
  return optionsState();
}

/**
 * Set the daily cap of auto-approved spending (blank = the default, 1.00).
 * @param {string} cap  major units
 */
export async function setDailyCap(cap) {
  requireAuth();
  const scale = await currentScale();
  oneTime.dailyCap = readerAmount(cap, scale, { allowBlank: true });
  saveLocal();
  return optionsState();
}

/** What the options page shows about one-time payments. */
export function optionsState() {
  const scale = knownScale();
  const today = dayKey(new Date());
  return {
    dailyCap: scale === null ? (oneTime.dailyCap === null ? DEFAULT_DAILY_CAP : '') : formatMinor(dailyCapMinor(scale), scale),
    dailyCapMinor: scale === null ? null : dailyCapMinor(scale),
    autoSpentTodayMinor: scale === null ? null : spentOn(oneTime.autoSpent, today).toString(),
    autoApprove: Object.entries(oneTime.autoApprove)
      .map(([origin, minor]) => ({ origin, minor }))
      .sort((a, b) => a.origin.localeCompare(b.origin)),
  };
}

/** The newest one-time payments, for the popup (without the receipts). */
export function recent() {
  return oneTime.recent.slice(0, 10).map(({ receipt: _receipt, ...rest }) => rest);
}
