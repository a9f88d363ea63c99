/// <reference types="chrome" />
// The token wallet (docs/extension.md, "Private payments"): the service's published token keys,
// fetched and cached; tokens bought in the background at random moments (never because of a page)
// up to a small reserve, each batch's proof checked against the key the service publishes for
// everyone before a token is kept; the issuance in progress written to storage before it is sent,
// so that a retry after a crash sends the same Idempotency-Key and the same blinded elements;
// tokens handed out for spending and taken back; refunds of tokens past their epoch and at
// sign-out. The wallet never spends: private.js and payments.js do, without the session.

import {
  BATCH_SIZE,
  DEFAULT_RESERVE,
  MAX_RESERVE,
  MIN_RESERVE,
  TokenError,
  expiredTokens,
  fromB64url,
  isToken,
  issuingKey,
  jitter,
  parseIssuance,
  parseKeyDocument,
  pickTokens,
  publishedKey,
  spendable,
  toB64url,
} from '../shared/tokens.js';
import { VoprfError, blindBatch, finalizeBatch, newTokenInputs } from '../shared/voprf.js';
import { ApiError, callApi } from './api.js';
import { socket } from './socket.js';
import { currentAuth, state } from './state.js';
import { changed } from './status.js';

/** Refills are looked at again after a random delay in this range, whatever the reader does. */
export const CHECK_MIN_MS = 15_000;
export const CHECK_MAX_MS = 45_000;
/** When a stream has no token at all, the next look comes sooner (still at a random moment). */
export const EMPTY_MIN_MS = 1_000;
export const EMPTY_MAX_MS = 8_000;
/** The key document is fetched again after this long (the service says max-age one day). */
export const KEYS_MAX_AGE_MS = 6 * 3600_000;
/** The issuance refusals the reader reads in the words of the stream's states. */
const READER_CODES = /** @type {Record<string, string>} */ ({ budget_exceeded: 'budget_exhausted', reader_frozen: 'account_frozen' });
/** A sign-out waits at most this long for the refund of the tokens held. */
const SIGN_OUT_REFUND_MS = 5_000;

/**
 * A batch being bought: everything needed to send the same request again and to finalize it.
 * @typedef {{key: string, currency: string, epoch: number, items: {input: string, blind: string, blinded: string}[]}} PendingIssuance
 * @typedef {{key: string, tokens: import('../shared/tokens.js').Token[]}} PendingRefund
 */
/**
 * One reader's wallet. `tokens` were never shown to the service; `unsure` were sent to be spent
 * and no answer came (a crash, a drop): they may have been spent, so they are only ever offered
 * for spending again on the private path (one per spend), never refunded — a refund refused as
 * "spent" would tell the service whose token paid that site. `spending` is what is out now.
 * @typedef {object} WalletData
 * @property {import('../shared/tokens.js').Token[]} tokens
 * @property {import('../shared/tokens.js').Token[]} unsure
 * @property {Record<string, {tokens: import('../shared/tokens.js').Token[], unsure: boolean}>} spending
 * @property {Record<string, import('../shared/tokens.js').Token[]>} reserved  set aside for a payment
 *   the reader is asked about: never sent yet, held again if the worker restarts
 * @property {PendingIssuance | null} issuance
 * @property {PendingRefund | null} refund
 * @property {string | null} error  why the last refill failed (a code of shared/sentences.js), or null
 */

/** @returns {WalletData} */
const emptyWallet = () => ({ tokens: [], unsure: [], spending: {}, reserved: {}, issuance: null, refund: null, error: null });

export const wallets = {
  /** @type {Record<string, WalletData>} every reader's wallet, by owner (service origin and email) */
  byOwner: {},
  /** @type {import('../shared/tokens.js').TokenKey[]} */
  keys: [],
  keysFetchedAt: 0,
  /** @type {string | null} the service origin the keys are of */
  keysOrigin: null,
  reserve: DEFAULT_RESERVE,
};

/** @type {ReturnType<typeof setTimeout> | null} */
let checkTimer = null;
let checkAt = 0;
/** @type {Promise<void> | null} */
let running = null;

/** The signed-in reader's wallet key, or null. */
export function owner() {
  return state.token && state.tokenOrigin && state.email ? `${state.tokenOrigin} ${state.email}` : null;
}

/** The signed-in reader's wallet (made empty when new), or null while signed out. */
export function current() {
  const who = owner();
  if (!who) return null;
  wallets.byOwner[who] ??= emptyWallet();
  return wallets.byOwner[who];
}

async function save() {
  await chrome.storage.local.set({ tokenWallets: wallets.byOwner });
}

/** @param {unknown} raw @returns {WalletData} */
function readWallet(raw) {
  const w = /** @type {any} */ (raw);
  const list = (/** @type {unknown} */ v) => (Array.isArray(v) ? v.filter(isToken) : []);
  /** @type {WalletData} */
  const wallet = { ...emptyWallet(), tokens: list(w?.tokens), unsure: list(w?.unsure) };
  // Tokens out when the worker stopped: their answer is lost, so they may have been spent.
  for (const out of Object.values(w?.spending ?? {})) wallet.unsure.push(...list(/** @type {any} */ (out)?.tokens));
  for (const set of Object.values(w?.reserved ?? {})) wallet.tokens.unshift(...list(set));
  if (w?.issuance && typeof w.issuance.key === 'string' && Array.isArray(w.issuance.items)) wallet.issuance = w.issuance;
  if (w?.refund && typeof w.refund.key === 'string') wallet.refund = { key: w.refund.key, tokens: list(w.refund.tokens) };
  wallet.error = typeof w?.error === 'string' ? w.error : null;
  return wallet;
}

/** Read what the wallet kept (a restarted worker, or a test's "restart"). */
export async function load() {
  const local = /** @type {any} */ (await chrome.storage.local.get(['tokenWallets', 'tokenKeys', 'privatePayments', 'tokenReserve']));
  wallets.byOwner = {};
  for (const [who, raw] of Object.entries(local.tokenWallets ?? {})) wallets.byOwner[who] = readWallet(raw);
  state.privatePayments = local.privatePayments === true;
  wallets.reserve = Number.isSafeInteger(local.tokenReserve) && local.tokenReserve >= MIN_RESERVE && local.tokenReserve <= MAX_RESERVE ? local.tokenReserve : DEFAULT_RESERVE;
  wallets.keys = [];
  wallets.keysFetchedAt = 0;
  wallets.keysOrigin = null;
  const cached = local.tokenKeys;
  if (cached && typeof cached.origin === 'string' && typeof cached.fetchedAt === 'number') {
    try {
      wallets.keys = parseKeyDocument(cached.document);
      wallets.keysFetchedAt = cached.fetchedAt;
      wallets.keysOrigin = cached.origin;
    } catch {
      // a damaged cache is fetched again
    }
  }
  await save();
}

/**
 * Private payments on or off (options page); saved for the next start.
 * @param {boolean} enabled
 */
export async function setPrivate(enabled) {
  await chrome.storage.local.set({ privatePayments: enabled });
  applyPrivate(enabled);
}

/**
 * Private payments on or off as chrome.storage.local now says (it changed: the options page, or
 * a test writing it directly). Writes nothing, so that changes in quick succession end in the
 * last one stored.
 * @param {boolean} enabled
 */
export function applyPrivate(enabled) {
  if (state.privatePayments === enabled) return;
  state.privatePayments = enabled;
  if (enabled && current()) scheduleCheck(jitter(EMPTY_MIN_MS, EMPTY_MAX_MS));
  changed();
}

/**
 * How many tokens to keep (options page).
 * @param {number} reserve
 */
export async function setReserve(reserve) {
  if (!Number.isSafeInteger(reserve) || reserve < MIN_RESERVE || reserve > MAX_RESERVE) {
    throw new ApiError('validation_failed', `reserve: ${MIN_RESERVE} to ${MAX_RESERVE} tokens`, 0, { field: 'reserve', min: MIN_RESERVE, max: MAX_RESERVE });
  }
  wallets.reserve = reserve;
  await chrome.storage.local.set({ tokenReserve: reserve });
  scheduleCheck(jitter(EMPTY_MIN_MS, EMPTY_MAX_MS));
  changed();
}

/* ---------------------------------------------------------------- keys */

/** The service's origin, whose keys the cache holds. */
function serviceOrigin() {
  return new URL(state.serviceUrl).origin;
}

/**
 * The published token keys of the configured service (cached; `force` fetches again).
 * No session goes with it: the same document for everyone, from anyone.
 * @param {boolean} [force]
 */
export async function keys(force = false) {
  const origin = serviceOrigin();
  const fresh = wallets.keysOrigin === origin && Date.now() - wallets.keysFetchedAt < KEYS_MAX_AGE_MS;
  if (fresh && !force) return wallets.keys;
  /** @type {unknown} */
  let document;
  try {
    document = await callApi(state.serviceUrl, '/.well-known/trickle-token-keys');
  } catch (error) {
    // A service from before private payments publishes no keys.
    if (error instanceof ApiError && error.status === 404) throw new TokenError('tokens_unavailable', 'the service publishes no token keys');
    throw error;
  }
  const parsed = parseKeyDocument(document);
  wallets.keys = parsed;
  wallets.keysFetchedAt = Date.now();
  wallets.keysOrigin = origin;
  await chrome.storage.local.set({ tokenKeys: { origin, fetchedAt: wallets.keysFetchedAt, document } });
  return parsed;
}

/* ---------------------------------------------------------------- what the others use */

/** The value of one token of the reader's currency now, or null when no key is known. */
export function tokenValue() {
  const currency = state.settings?.currency;
  const key = currency ? issuingKey(wallets.keys, currency, Date.now()) ?? wallets.keys.find((k) => k.currency === currency) : null;
  return key ? { valueMinor: key.valueMinor, currency: key.currency, scale: key.scale } : null;
}

/**
 * What one token of `epoch` is worth (its key's value), or null when its key is not known.
 * @param {number} epoch
 */
export function valueOf(epoch) {
  const currency = state.settings?.currency;
  const key = currency ? publishedKey(wallets.keys, currency, epoch) : null;
  return key ? BigInt(key.valueMinor) : null;
}

/** How many tokens the reader holds that can be spent now. */
export function held() {
  const wallet = current();
  const currency = state.settings?.currency;
  if (!wallet || !currency) return 0;
  const now = Date.now();
  return [...wallet.tokens, ...wallet.unsure].filter((t) => spendable(t, wallets.keys, currency, now)).length;
}

/**
 * Why spending stops when the wallet is empty: the service refused the last refill for a reason
 * only the reader can change (funds, budget, a hold), else null.
 * @returns {'insufficient_funds' | 'budget_exhausted' | 'account_frozen' | null}
 */
export function blocked() {
  const error = current()?.error ?? null;
  if (held() > 0) return null;
  if (error === 'insufficient_funds' || error === 'budget_exhausted' || error === 'account_frozen') return error;
  return null;
}

/**
 * Hand out `count` tokens for a spend named `ref` (recorded before the caller sends them, so a
 * crash leaves them `unsure`, not lost). A token whose outcome is unknown goes out alone.
 * @param {string} ref
 * @param {number} count
 * @returns {Promise<import('../shared/tokens.js').Token[] | null>} null when not enough are held
 */
export async function take(ref, count) {
  const wallet = current();
  const currency = state.settings?.currency;
  if (!wallet || !currency || count < 1) return null;
  const now = Date.now();
  const unsure = pickTokens(wallet.unsure, 1, wallets.keys, currency, now);
  /** @type {import('../shared/tokens.js').Token[] | null} */
  let out;
  if (unsure) {
    out = unsure;
    wallet.unsure = wallet.unsure.filter((t) => t !== unsure[0]);
  } else {
    out = pickTokens(wallet.tokens, count, wallets.keys, currency, now, { partial: true });
    if (!out) {
      scheduleCheck(jitter(EMPTY_MIN_MS, EMPTY_MAX_MS));
      return null;
    }
    const taken = new Set(out);
    wallet.tokens = wallet.tokens.filter((t) => !taken.has(t));
  }
  wallet.spending[ref] = { tokens: out, unsure: unsure !== null };
  await save();
  if (wallet.tokens.length < lowMark()) scheduleCheck(Math.min(checkDelay(), jitter(CHECK_MIN_MS, CHECK_MAX_MS)));
  changed();
  return out;
}

/**
 * Set aside `count` tokens never shown to the service, for a payment the reader is asked about.
 * @param {string} ref
 * @param {number} count
 * @returns {Promise<boolean>} false when fewer are held
 */
export async function reserve(ref, count) {
  const wallet = current();
  const currency = state.settings?.currency;
  if (!wallet || !currency || count < 1) return false;
  if (wallet.reserved[ref]?.length === count) return true;
  const out = pickTokens(wallet.tokens, count, wallets.keys, currency, Date.now());
  if (!out) return false;
  const taken = new Set(out);
  wallet.tokens = wallet.tokens.filter((t) => !taken.has(t));
  wallet.reserved[ref] = out;
  await save();
  changed();
  return true;
}

/**
 * The tokens set aside for `ref` are held again (the payment was declined, or went another way).
 * @param {string} ref
 */
export async function release(ref) {
  const wallet = current();
  const out = wallet?.reserved[ref];
  if (!wallet || !out) return;
  delete wallet.reserved[ref];
  wallet.tokens.unshift(...out);
  await save();
  changed();
}

/**
 * The tokens set aside for `ref` are about to be sent: recorded as out first.
 * @param {string} ref
 * @returns {Promise<import('../shared/tokens.js').Token[] | null>}
 */
export async function sending(ref) {
  const wallet = current();
  const out = wallet?.reserved[ref];
  if (!wallet || !out) return null;
  delete wallet.reserved[ref];
  wallet.spending[ref] = { tokens: out, unsure: false };
  await save();
  return out;
}

/**
 * The tokens of `ref` were spent (a receipt came) or refused as spent (`token_spent`): gone.
 * @param {string} ref
 */
export async function spent(ref) {
  const wallet = current();
  if (!wallet || !(ref in wallet.spending)) return;
  delete wallet.spending[ref];
  await save();
  changed();
}

/**
 * The spend `ref` did not happen as far as the extension knows. `sent`: it may have reached the
 * service (a drop before its answer): its tokens become unsure. Otherwise (refused before
 * anything moved, or never sent) they are held again as they were.
 * @param {string} ref
 * @param {{sent: boolean}} how
 */
export async function giveBack(ref, how) {
  const wallet = current();
  const out = wallet?.spending[ref];
  if (!wallet || !out) return;
  delete wallet.spending[ref];
  if (how.sent || out.unsure) wallet.unsure.push(...out.tokens);
  else wallet.tokens.unshift(...out.tokens);
  await save();
  changed();
}

/**
 * The service refused a token as invalid (not its key's output): dropped, with the others of
 * `ref` held again.
 * @param {string} ref
 * @param {number | null} index  the refused token's index in the spend, null when not said
 */
export async function refused(ref, index) {
  const wallet = current();
  const out = wallet?.spending[ref];
  if (!wallet || !out) return;
  delete wallet.spending[ref];
  if (index !== null && out.tokens.length > 1) wallet.tokens.unshift(...out.tokens.filter((_, i) => i !== index));
  await save();
  changed();
}

/* ---------------------------------------------------------------- refills */

function lowMark() {
  return Math.max(1, Math.ceil(wallets.reserve / 2));
}

function checkDelay() {
  return checkTimer ? Math.max(0, checkAt - Date.now()) : Infinity;
}

/**
 * Look at the wallet again in `delayMs` (or earlier if a look is already due sooner).
 * @param {number} delayMs
 */
export function scheduleCheck(delayMs) {
  if (checkTimer && checkAt <= Date.now() + delayMs) return;
  if (checkTimer) clearTimeout(checkTimer);
  checkAt = Date.now() + delayMs;
  checkTimer = setTimeout(() => {
    checkTimer = null;
    void check();
  }, delayMs);
  // Node (the unit tests) must not wait for it; browsers return a number.
  /** @type {any} */ (checkTimer).unref?.();
}

/**
 * One look at the wallet: finish what a previous life left (an issuance, a refund), refund
 * tokens past their epoch, and refill below the low mark. Then the next look, at a random moment.
 * @returns {Promise<void>}
 */
export function check() {
  if (!running) {
    running = (async () => {
      try {
        await checkOnce();
      } catch (error) {
        const wallet = current();
        if (wallet) wallet.error = error instanceof ApiError || error instanceof TokenError ? error.code : 'internal';
        if (!(error instanceof ApiError || error instanceof TokenError)) console.error('Trickle: token wallet', error);
      } finally {
        running = null;
        if (current()) scheduleCheck(jitter(CHECK_MIN_MS, CHECK_MAX_MS));
        changed();
      }
    })();
  }
  return running;
}

async function checkOnce() {
  const wallet = current();
  const auth = currentAuth();
  const currency = state.settings?.currency;
  if (!wallet || !auth) return;
  if (wallet.refund) await sendRefund(wallet, auth);
  if (wallet.issuance) await sendIssuance(wallet, auth);
  if (!state.privatePayments || !currency) return;
  if (wallet.error === 'token_key_mismatch') return; // the reader is told; no more money goes there
  const published = await keys();
  const now = Date.now();
  const expired = expiredTokens(wallet.tokens, published, currency, now);
  if (expired.length > 0) {
    wallet.tokens = wallet.tokens.filter((t) => !expired.includes(t));
    wallet.refund = { key: crypto.randomUUID(), tokens: expired };
    await save();
    await sendRefund(wallet, auth);
  }
  if (held() >= lowMark()) {
    wallet.error = null;
    return;
  }
  let key = issuingKey(published, currency, now);
  if (!key) key = issuingKey(await keys(true), currency, now);
  if (!key) throw new TokenError('tokens_unavailable', `the service issues no ${currency} tokens now`);
  // Below the low mark: batches of the one size until it is reached, in this one look. The
  // reserve is never passed: held < low mark = ceil(reserve / 2) and reserve >= 2 * BATCH_SIZE.
  while (held() < lowMark()) {
    const blinded = blindBatch(newTokenInputs(BATCH_SIZE));
    wallet.issuance = {
      key: crypto.randomUUID(),
      currency,
      epoch: key.epoch,
      items: blinded.map((b) => ({ input: toB64url(b.input), blind: toB64url(b.blind), blinded: toB64url(b.blinded) })),
    };
    await save(); // before anything is sent: a crash from here on resends this very request
    await sendIssuance(wallet, auth);
    if (wallet.issuance) return; // no answer: the same request again at the next look
  }
}

/**
 * Send (or send again) the pending issuance; keep its tokens only if the proof verifies against
 * the key published for its epoch. A failure with no answer keeps it pending for the next look.
 * @param {WalletData} wallet
 * @param {import('./api.js').Auth} auth
 */
async function sendIssuance(wallet, auth) {
  const pending = /** @type {PendingIssuance} */ (wallet.issuance);
  const body = { currency: pending.currency, epoch: pending.epoch, blinded: pending.items.map((i) => i.blinded) };
  /** @type {any} */
  let answer;
  try {
    answer = await callApi(state.serviceUrl, '/api/v1/tokens', { method: 'POST', auth, body, idempotencyKey: pending.key });
  } catch (error) {
    if (error instanceof ApiError && error.status > 0 && error.status < 500) {
      // Refused: nothing was charged; this request is over.
      wallet.issuance = null;
      await save();
      if (error.code === 'unknown_epoch') wallets.keysFetchedAt = 0;
      throw new ApiError(READER_CODES[error.code] ?? error.code, error.message, error.status);
    }
    throw error; // no answer: the same request again at the next look
  }
  try {
    const { evaluated, proof, balanceMinor } = parseIssuance(answer, { currency: pending.currency, epoch: pending.epoch, count: pending.items.length });
    let key = publishedKey(wallets.keys, pending.currency, pending.epoch);
    if (!key) key = publishedKey(await keys(true), pending.currency, pending.epoch);
    if (!key) throw new TokenError('token_key_mismatch', `the service publishes no key for epoch ${pending.epoch}`);
    const blinded = pending.items.map((i) => ({
      input: /** @type {Uint8Array} */ (fromB64url(i.input)),
      blind: /** @type {Uint8Array} */ (fromB64url(i.blind)),
      blinded: /** @type {Uint8Array} */ (fromB64url(i.blinded)),
    }));
    const outputs = finalizeBatch(key.publicKey, blinded, evaluated, proof);
    wallet.tokens.push(...outputs.map((output, i) => ({ epoch: pending.epoch, input: pending.items[i].input, output: toB64url(output) })));
    wallet.issuance = null;
    wallet.error = null;
    await save();
    if (balanceMinor !== null && state.money) state.money = { ...state.money, balance: balanceMinor };
    socket.send({ type: 'balance' });
  } catch (error) {
    if (!(error instanceof VoprfError || error instanceof TokenError)) throw error;
    // Not evaluated with the key published for everyone (a key kept for this reader would
    // recognise their tokens when spent): the whole batch is dropped, none of it kept.
    wallet.issuance = null;
    await save();
    throw new TokenError('token_key_mismatch', `the service's tokens do not verify against its published key (${error.message})`);
  }
}

/**
 * Send (or send again) the pending refund. A token the service names as invalid or spent is
 * dropped and the rest asked again under a new key; no answer keeps it pending.
 * @param {WalletData} wallet
 * @param {import('./api.js').Auth} auth
 */
async function sendRefund(wallet, auth) {
  for (let attempt = 0; attempt < 3 && wallet.refund; attempt++) {
    const pending = wallet.refund;
    if (pending.tokens.length === 0) {
      wallet.refund = null;
      break;
    }
    try {
      const answer = await callApi(state.serviceUrl, '/api/v1/tokens/refund', {
        method: 'POST',
        auth,
        body: { tokens: pending.tokens },
        idempotencyKey: pending.key,
      });
      wallet.refund = null;
      if (typeof answer.balance_minor === 'string' && state.money) state.money = { ...state.money, balance: answer.balance_minor };
      socket.send({ type: 'balance' });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status === 0 || error.status >= 500) throw error;
      const index = Number(error.details?.index ?? NaN);
      wallet.refund =
        Number.isInteger(index) && index < pending.tokens.length
          ? { key: crypto.randomUUID(), tokens: pending.tokens.filter((_, i) => i !== index) }
          : null; // refused as a whole: these tokens are not this service's to refund
    }
    await save();
  }
  await save();
}

/**
 * Before the session ends (sign-out): every clean token held goes back to the balance. Unsure
 * tokens and those out now stay with the reader's wallet for their next sign-in (see WalletData).
 * Bounded: a service that does not answer keeps the tokens for next time.
 */
export async function refundAll() {
  const wallet = current();
  const auth = currentAuth();
  if (!wallet || !auth) return;
  for (const ref of Object.keys(wallet.reserved)) await release(ref);
  if (wallet.tokens.length === 0 && !wallet.refund && !wallet.issuance) return;
  const work = (async () => {
    if (running) await running;
    if (wallet.issuance) await sendIssuance(wallet, auth).catch(() => {});
    const tokens = wallet.tokens;
    wallet.tokens = [];
    if (wallet.refund) wallet.refund.tokens.push(...tokens);
    else wallet.refund = { key: crypto.randomUUID(), tokens };
    await save(); // before it is sent: a retry sends the same key and the same tokens
    await sendRefund(wallet, auth);
  })();
  await Promise.race([work.catch(() => {}), new Promise((resolve) => setTimeout(resolve, SIGN_OUT_REFUND_MS))]);
}

/** A sign-in: the reader starts afresh, a refused or mismatched refill is tried again. */
export function signedIn() {
  const wallet = current();
  if (wallet) wallet.error = null;
  scheduleCheck(jitter(EMPTY_MIN_MS, EMPTY_MAX_MS));
}

/** Make sure a look is scheduled (an alarm woke the worker; a sign-in). */
export function ensureChecks() {
  if (!checkTimer && !running) scheduleCheck(jitter(CHECK_MIN_MS, CHECK_MAX_MS));
}

/** Stop looking (signed out). */
export function stopChecks() {
  if (checkTimer) clearTimeout(checkTimer);
  checkTimer = null;
}

/** What the popup shows of the wallet. */
export function summary() {
  const wallet = current();
  const value = tokenValue();
  return {
    privatePayments: state.privatePayments,
    held: held(),
    reserve: wallets.reserve,
    valueMinor: value?.valueMinor ?? null,
    heldMinor: value ? (BigInt(value.valueMinor) * BigInt(held())).toString() : null,
    error: wallet?.error ?? null,
  };
}
