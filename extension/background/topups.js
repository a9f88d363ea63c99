/// <reference types="chrome" />
// Card top-ups in the background (docs/funding.md): the card options the service offers, creating
// a top-up (`POST /api/v1/topups`, one Idempotency-Key for every retry, so a retry gets the same
// Stripe page and never a second charge), opening Stripe's page in a tab, and following the
// latest top-up until Stripe's word reaches the service; then the stream socket is asked for the
// new balance. The latest top-up's id is kept in chrome.storage.session: the popup closes when
// the tab opens, and asks again when the reader opens it.

import { isMinor } from '../shared/amounts.js';
import { checkoutUrl, parseOptions, parseTopup } from '../shared/topups.js';
import { ApiError, callApi } from './api.js';
import { socket } from './socket.js';
import { requireAuth, state } from './state.js';

/** Delays between attempts of one top-up creation (same Idempotency-Key) that got no answer. */
export const RETRY_DELAYS_MS = [500, 1500];
const STORAGE_KEY = 'topup';

/** @type {{id: number | null, credited: number | null}} credited: the id whose credit was seen */
const latest = { id: null, credited: null };

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @returns {Promise<import('../shared/topups.js').TopupOptions>} */
export async function options() {
  const auth = requireAuth();
  return parseOptions(await callApi(state.serviceUrl, '/api/v1/topups/options', { auth }));
}

/**
 * Top up by card: the top-up, then Stripe's page in a new tab.
 * @param {string} amountMinor  one of the presets the service offered
 */
export async function start(amountMinor) {
  const auth = requireAuth();
  const offered = await options();
  const card = offered.card;
  if (!card) throw new ApiError('card_topups_unavailable', 'This Trickle service takes no card top-ups.', 404);
  if (!isMinor(amountMinor) || BigInt(amountMinor) < BigInt(card.min) || BigInt(amountMinor) > BigInt(card.max)) {
    throw new ApiError('topup_amount_out_of_range', 'Pick one of the amounts offered.', 0);
  }
  const idempotencyKey = crypto.randomUUID();
  const body = { amount_minor: amountMinor, currency: card.currency };
  /** @type {any} */
  let answer;
  for (let attempt = 0; ; attempt += 1) {
    try {
      answer = await callApi(state.serviceUrl, '/api/v1/topups', { method: 'POST', auth, body, idempotencyKey });
      break;
    } catch (error) {
      // No answer, or Stripe did not answer the service (stripe_unavailable, 502): the same key
      // makes the service ask Stripe again for the same page.
      const again = error instanceof ApiError && (error.status === 0 || error.status >= 500);
      if (!again || attempt >= RETRY_DELAYS_MS.length) throw error;
      await sleep(RETRY_DELAYS_MS[attempt]);
    }
  }
  const topup = parseTopup(answer);
  latest.id = topup.id;
  await chrome.storage.session.set({ [STORAGE_KEY]: topup.id });
  await chrome.tabs.create({ url: checkoutUrl(topup.checkoutUrl) });
  return topup;
}

/** The latest top-up as the service sees it now, or null when there is none. */
export async function status() {
  const auth = requireAuth();
  if (latest.id === null) {
    const stored = (await chrome.storage.session.get([STORAGE_KEY]))[STORAGE_KEY];
    latest.id = Number.isSafeInteger(stored) ? /** @type {number} */ (stored) : null;
  }
  if (latest.id === null) return null;
  /** @type {any} */
  let answer;
  try {
    answer = await callApi(state.serviceUrl, `/api/v1/topups/${latest.id}`, { auth });
  } catch (error) {
    if (!(error instanceof ApiError && error.code === 'topup_not_found')) throw error;
    latest.id = null; // another reader's, after a sign-in as someone else
    await chrome.storage.session.set({ [STORAGE_KEY]: null });
    return null;
  }
  const topup = parseTopup(answer);
  if (topup.state === 'credited' && latest.credited !== topup.id) {
    latest.credited = topup.id;
    socket.send({ type: 'balance' }); // the new balance, for the popup
  }
  return topup;
}
