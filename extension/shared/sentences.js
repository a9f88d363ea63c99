// What the reader reads when something did not work, or about a tab's status: one sentence about
// what happened and what to do, made from a stable code and the values it needs (amounts, the
// budget, the limit that stopped it) — never a field name, an exception's text or the service's
// `message`, which is for developers. Every page of the extension (popup, options, approval
// window, top-ups) and the toolbar title take their words from here. Pure: no browser APIs.
//
// The codes: every code of docs/errors.md the extension can receive (the rest are named in
// NOT_FOR_READERS with the reason), the stream protocol's error codes (docs/stream-protocol.md),
// and the extension's own (EXTENSION_CODES). extension/test/sentences.test.js holds the lists to
// the docs.

import { formatMoney } from './format.js';

/**
 * What the reader was doing when the code came back; it picks the words ("this tip", "your
 * limits").
 * @typedef {'sign-in' | 'sign-up' | 'redeem' | 'tip' | 'purchase' | 'site' | 'limits' | 'auto-approve' |
 *   'daily-cap' | 'service-url' | 'topup' | 'pause' | 'stream' | 'other'} Action
 */
/**
 * A way forward the page shows as a link next to the sentence: a place in the options page
 * (`options.html#<anchor>`) or in the popup (`#<anchor>`).
 * @typedef {{label: string, page: 'options' | 'popup', anchor: string}} Next
 * @typedef {{text: string, next: Next | null}} Sentence
 * @typedef {{balance: string, monthSpent: string, monthBudget: string}} Money
 */
/**
 * @typedef {object} Context
 * @property {Action} [action]
 * @property {import('./format.js').Asset | null} [asset]  the reader's currency and scale
 * @property {string | null} [amountMinor]  what the reader tried to pay (or set)
 * @property {Money | null} [money]  the reader's balance and month, as last known
 * @property {Record<string, unknown> | null} [details]  the values that came with the error
 * @property {Date} [now]
 * @property {string} [locale]  BCP 47; the browser's when omitted
 * @property {string} [timeZone]  IANA; the reader's when omitted
 */

/** The service's smallest password (PASSWORD_MIN_CHARS, docs/api.md), when it did not say. */
export const PASSWORD_MIN_CHARS = 10;

export const RAISE_BUDGET = Object.freeze(/** @type {Next} */ ({ label: 'Raise your monthly budget in Options', page: 'options', anchor: 'limits' }));
const CHECK_SERVICE = Object.freeze(/** @type {Next} */ ({ label: 'Check the service URL in Options', page: 'options', anchor: 'service' }));
const TOP_UP = Object.freeze(/** @type {Next} */ ({ label: 'Top up', page: 'popup', anchor: 'voucher-view' }));
const PRIVATE_OPTION = Object.freeze(/** @type {Next} */ ({ label: 'Private payments in Options', page: 'options', anchor: 'private' }));
const SIGN_IN = Object.freeze(/** @type {Next} */ ({ label: 'Sign in', page: 'popup', anchor: 'signed-out-view' }));

/**
 * Codes of docs/errors.md that never reach the extension, and why: it signs in with a bearer
 * token, never cookies, and it does not call the creators', operators' or Stripe's endpoints.
 */
export const NOT_FOR_READERS = Object.freeze({
  config_error: 'start-up and the CLI only',
  csrf_failed: 'cookie sessions only (the dashboard); the extension sends a bearer token',
  payee_name_taken: 'creating payees (the dashboard)',
  unsafe_url: 'site verification (the dashboard)',
  site_verification_failed: 'site verification (the dashboard)',
  too_many_site_checks: 'site verification (the dashboard)',
  claim_below_minimum: 'claims of earnings (the dashboard)',
  payout_not_found: 'payouts (the dashboard and the CLI)',
  payout_already_settled: 'payouts (the CLI)',
  topup_not_refundable: 'refunds (the CLI)',
  stripe_signature_invalid: "Stripe's webhook",
  stripe_event_invalid: "Stripe's webhook",
  stripe_event_mismatch: "Stripe's webhook",
  not_ready: "the load balancer's readiness check (/readyz)",
});

/** The extension's own codes (not the service's). */
export const EXTENSION_CODES = Object.freeze([
  'service_unreachable',
  'bad_response',
  'connection_refused',
  'session_origin_mismatch',
  'signed_out',
  'not_monetized',
  'declined',
  'busy',
  'invalid_request',
  'invalid_service_url',
  'permission_denied',
  'extension_unavailable',
  'invalid_message',
  'internal',
  'token_key_mismatch',
  'tokens_unavailable',
  'not_enough_tokens',
]);

/** @param {string} text @param {Next | null} [next] @returns {Sentence} */
const say = (text, next = null) => ({ text, next });

/** @param {Context} c @param {string | null | undefined} minor */
function money(c, minor) {
  return c.asset && minor != null ? formatMoney(minor, c.asset, c.locale) : '';
}

/** @param {unknown} value @returns {value is string} */
const isMinor = (value) => typeof value === 'string' && /^(0|[1-9][0-9]{0,18})$/.test(value);

/** "this tip", "this payment", "this": what the reader tried to pay. @param {Context} c */
function what(c) {
  const amount = isMinor(c.amountMinor) ? money(c, c.amountMinor) : '';
  const noun = c.action === 'tip' ? 'tip' : 'payment';
  return amount ? `This ${noun} of ${amount}` : `This ${noun}`;
}

/**
 * When the monthly budget starts again: 00:00 UTC on the first of next month, in the reader's
 * own date and time.
 * @param {Context} c
 */
export function budgetResetText(c) {
  const now = c.now ?? new Date();
  const next = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1));
  return new Intl.DateTimeFormat(c.locale, { dateStyle: 'long', timeStyle: 'short', timeZone: c.timeZone }).format(next);
}

/** @param {Context} c */
function budgetRefused(c) {
  const m = c.money;
  const amount = c.amountMinor;
  if (m && isMinor(amount) && isMinor(m.monthSpent) && isMinor(m.monthBudget) && c.asset) {
    const left = BigInt(m.monthBudget) - BigInt(m.monthSpent);
    const over = BigInt(amount) - (left > 0n ? left : 0n);
    if (over > 0n) {
      const leftText = money(c, (left > 0n ? left : 0n).toString());
      return say(
        `${what(c)} is ${money(c, over.toString())} more than what is left of your monthly budget ` +
          `(${leftText} of ${money(c, m.monthBudget)}). Nothing was paid.`,
        RAISE_BUDGET,
      );
    }
  }
  return say(`${what(c)} is more than what is left of your monthly budget. Nothing was paid.`, RAISE_BUDGET);
}

/** @param {Context} c */
function balanceRefused(c) {
  const m = c.money;
  const amount = c.amountMinor;
  if (m && isMinor(amount) && isMinor(m.balance) && c.asset) {
    const short = BigInt(amount) - BigInt(m.balance);
    if (short > 0n) {
      return say(
        `${what(c)} is ${money(c, short.toString())} more than your balance (${money(c, m.balance)}). ` +
          'Nothing was paid: top up first.',
        TOP_UP,
      );
    }
  }
  return say(`${what(c)} is more than your balance. Nothing was paid: top up first.`, TOP_UP);
}

/** The budget is spent: no more streaming this month. @param {Context} c */
function budgetReached(c) {
  const budget = c.money && isMinor(c.money.monthBudget) ? money(c, c.money.monthBudget) : '';
  return say(
    `Not paying: this month's budget${budget ? ` of ${budget}` : ''} is spent. ` +
      `It starts again on ${budgetResetText(c)}.`,
    RAISE_BUDGET,
  );
}

/** @param {Context} c */
function invalidAmount(c) {
  const d = c.details ?? {};
  const scale = typeof d.scale === 'number' ? d.scale : c.asset?.scale;
  switch (d.reason) {
    case 'empty':
      return say('Write an amount, like 0.50.');
    case 'zero':
      return say('Write an amount above zero, like 0.50.');
    case 'too_many_decimals':
      return say(`Write the amount with at most ${scale ?? 'the allowed number of'} digits after the point.`);
    case 'too_large':
      return say('That amount is too large: write a smaller one.');
    default:
      return say('Write the amount with digits and at most one point, like 0.50.');
  }
}

/** @param {Context} c */
function validationFailed(c) {
  const d = c.details ?? {};
  const field = typeof d.field === 'string' ? d.field : '';
  const max = isMinor(d.max) ? money(c, d.max) : '';
  const value = isMinor(d.value) ? money(c, d.value) : '';
  if (field === 'password' || (c.action === 'sign-up' && field === '')) {
    const min = typeof d.min === 'number' ? d.min : PASSWORD_MIN_CHARS;
    return say(`Choose a password of at least ${min} characters.`);
  }
  if (field === 'email') return say('Write your email address in full, like name@example.com.');
  if (field === 'rate_per_hour_minor') {
    return say(max ? `An hourly rate can be at most ${max}${value ? `; you wrote ${value}` : ''}.` : 'That hourly rate is more than the service allows.');
  }
  if (field === 'monthly_budget_minor') {
    return say(max ? `A monthly budget can be at most ${max}${value ? `; you wrote ${value}` : ''}.` : 'That monthly budget is more than the service allows.');
  }
  if (field === 'code' || c.action === 'redeem') return say('Write the voucher code as you received it.');
  if (field === 'origin') return say('This site’s address cannot be used for payments.');
  if (field === 'reserve' && typeof d.min === 'number' && typeof d.max === 'number') {
    return say(`Keep between ${d.min} and ${d.max} tokens: write a whole number.`);
  }
  switch (c.action) {
    case 'tip':
    case 'purchase':
      return say('The service did not accept this payment as it was asked for. Nothing was paid.');
    case 'limits':
    case 'site':
      return say('The service did not accept this amount: write it like 0.60.');
    default:
      return say('The service did not accept what was sent. Check what you wrote and try again.');
  }
}

/** @type {Record<string, (c: Context) => Sentence>} */
const SENTENCES = {
  // --- the service's codes (docs/errors.md) ---
  internal_error: () => say('Something went wrong at the Trickle service. Try again in a moment.'),
  key_store_error: () => say('The Trickle service cannot sign receipts right now, so nothing was paid. Try again later.'),
  not_found: (c) =>
    c.action === 'purchase'
      ? say('This payment request is no longer waiting: the page went away or it was answered already.')
      : say('The Trickle service does not know this. Check the service URL in Options.', CHECK_SERVICE),
  method_not_allowed: () => say('The server at the service URL does not answer like a Trickle service.', CHECK_SERVICE),
  malformed_json: () => say('The service could not read what the extension sent. Update the extension and try again.'),
  validation_failed: validationFailed,
  body_too_large: () => say('What you wrote is too long for the service. Shorten it and try again.'),
  unsupported_media_type: () => say('The service could not read what the extension sent. Update the extension and try again.'),
  unauthenticated: () => say('Your session has ended: sign in again.', SIGN_IN),
  forbidden: () => say('That belongs to another account.'),
  rate_limited: () => say('Too many attempts: wait a few minutes, then try again.'),
  too_many_sign_ups: () => say('Too many accounts were made from your network recently. Wait an hour, or sign in to an account you have.'),
  idempotency_key_required: () => say('The extension sent a payment without its safety key, so nothing was paid. Try again.'),
  idempotency_key_reused: () => say('This payment was already sent with other details, so nothing more was paid. Try again.'),
  email_taken: () => say('An account with this email already exists: sign in instead.'),
  invalid_credentials: () => say('The email or the password is not right. Check both and try again.'),
  invalid_amount: invalidAmount,
  amount_overflow: () => say('That amount would pass the most the service can hold, so nothing moved.'),
  insufficient_funds: (c) =>
    c.action === 'stream' ? say('Not paying: your balance is too low to pay this site. Top up to go on.', TOP_UP) : balanceRefused(c),
  currency_mismatch: (c) =>
    say(`This is asked in another currency than your account's${c.asset ? ` (${c.asset.currency})` : ''}, so it cannot be paid.`),
  idempotency_conflict: () => say('This payment was already sent with another amount, so nothing more was paid. Try again.'),
  account_not_found: () => say('The service could not find your account’s balance. Sign out and sign in again.'),
  voucher_invalid: () => say('This voucher code is not known. Check it and try again.'),
  voucher_already_redeemed: () => say('This voucher was redeemed already: each voucher works once.'),
  payee_not_found: (c) =>
    c.action === 'stream'
      ? say('Not paying: this page names a payee the Trickle service does not know.')
      : say('This site names a payee the Trickle service does not know, so it cannot be paid.'),
  too_many_site_overrides: () =>
    say('You have rules for as many sites as the service keeps. Set another site back to your own rate first.'),
  budget_exhausted: (c) => (c.action === 'stream' ? budgetReached(c) : budgetRefused(c)),
  site_disabled: (c) =>
    c.action === 'stream'
      ? say('Paused: payments to this site are off.')
      : say('You turned payments to this site off. Turn “Pay this site” on to pay it.'),
  card_topups_unavailable: () => say('This Trickle service takes no card top-ups: redeem a voucher instead.'),
  topup_not_found: () => say('The service no longer knows this card top-up. Start a new one.'),
  topup_amount_out_of_range: () => say('Pick one of the amounts offered.'),
  amount_not_chargeable: () => say('That amount cannot be charged to a card: pick one of the amounts offered.'),
  account_frozen: () =>
    say('Your spending is on hold: a card payment of yours was disputed or refunded. The operator of the service can lift it.'),
  stripe_unavailable: () => say('Stripe did not answer: try again in a moment.'),
  // --- private payments (tokens; docs/tokens.md) ---
  invalid_token: () => say('The service refused one of your tokens as not its own. The extension dropped it; nothing was paid with it.'),
  token_spent: () => say('One of your tokens had been spent already. The extension dropped it; nothing was paid twice.'),
  unknown_epoch: () => say('The service has new token keys. The extension fetches them again: try again in a moment.'),
  epoch_expired: () => say('Some of your tokens are too old to pay with. The extension gives them back to your balance.'),
  invalid_element: () => say('The service could not read the extension’s request for tokens. Update the extension.'),
  too_many_tokens: () => say('The extension sent more tokens than this price takes, so nothing was paid. Update the extension.'),
  too_few_tokens: () => say('The extension sent fewer tokens than this price takes, so nothing was paid. Update the extension.'),
  // --- the stream protocol's error codes (docs/stream-protocol.md) ---
  invalid_message: () => say('Not paying: the service did not understand the extension. Update the extension.'),
  too_many_streams: () => say('Not paying: too many pages are paying at once. Close some monetized tabs.'),
  unknown_stream: () => say('Not paying: this page’s stream ended. Reload the page to pay it again.'),
  invalid_origin: () => say('Not paying: this page’s address cannot be paid.'),
  duplicate_ref: () => say('Not paying: the extension asked twice for this page. Reload the page.'),
  // --- the extension's own codes ---
  service_unreachable: () => say('The Trickle service cannot be reached. Check your connection, or the service URL in Options.', CHECK_SERVICE),
  bad_response: () => say('The server at the service URL did not answer like a Trickle service.', CHECK_SERVICE),
  connection_refused: () => say('The Trickle service refused this version of the extension. Update the extension.'),
  session_origin_mismatch: () => say('The service URL changed while you signed in: sign in to the new service.', SIGN_IN),
  signed_out: () => say('You are signed out: sign in first.', SIGN_IN),
  not_monetized: () => say('This tab has no page that takes payments.'),
  declined: () => say('Declined: nothing was paid.'),
  busy: () => say('Another payment request is waiting for your answer: answer that one first.'),
  invalid_request: (c) => {
    const d = c.details ?? {};
    if (d.reason === 'currency') return SENTENCES.currency_mismatch(c);
    return say('The page asked for a payment the extension cannot make, so nothing was paid.');
  },
  invalid_service_url: (c) => {
    const reason = c.details?.reason;
    if (reason === 'not_http') return say('The service URL must start with https:// (or http:// for this computer).');
    if (reason === 'credentials') return say('Write the service URL without a user name or password.');
    return say('Write the service URL in full, like https://trickle.example or http://127.0.0.1:8420.');
  },
  permission_denied: () => say('The extension needs your permission to reach that service. Save again and allow it.'),
  extension_unavailable: () => say('The extension is restarting. Close this and open it again.'),
  internal: () => say('Something went wrong in the extension. Close this and try again.'),
  token_key_mismatch: () =>
    say(
      'The service answered with tokens made with another key than the one it publishes for everyone, which could tell it who you are when you spend them. The extension kept none of them and buys no more from it.',
    ),
  tokens_unavailable: () =>
    say('This Trickle service offers no private payments now: turn private payments off in Options to pay from your account.', PRIVATE_OPTION),
  not_enough_tokens: () => say('The tokens set aside for this payment were spent meanwhile, so nothing was paid. Try again.'),
};

/** Every code with a sentence. */
export const CODES = Object.freeze(Object.keys(SENTENCES));

/**
 * The sentence for a code. An unknown code gets a general sentence, never the code itself.
 * @param {string} code
 * @param {Context} [context]
 * @returns {Sentence}
 */
export function sentence(code, context = {}) {
  const make = Object.hasOwn(SENTENCES, code) ? SENTENCES[code] : null;
  return make ? make(context) : say('That did not work. Try again in a moment.');
}

/**
 * @typedef {import('./attention.js').Status} Status
 */

/** @type {Record<string, string>} */
const STATUS = {
  'signed-out:signed_out': 'Signed out: sign in to pay the sites you read.',
  'not-monetized:': 'This page is not monetized.',
  'paused:global-pause': 'Paused: all payments are paused.',
  'paused:site-disabled': 'Paused: payments to this site are off.',
  'error:service_unreachable': 'Not paying: the Trickle service cannot be reached. Retrying…',
  'error:account_frozen': 'Not paying: your spending is on hold after a disputed or refunded card payment.',
  'error:': 'Not paying: the service refused this page’s payment pointer.',
  'paused:hidden': 'Paused: the page is not visible or not focused.',
  'paused:idle': 'Paused: you are idle or the screen is locked.',
  'paused:': 'Starting…',
  'streaming:': 'Paying this site.',
};

/**
 * A tab's status for people (the popup and the toolbar title). `error` is the service's code for
 * this page's stream, if it refused it.
 * @param {Status} status
 * @param {Context & {error?: string | null}} [context]
 * @returns {Sentence}
 */
export function statusSentence(status, context = {}) {
  const c = { ...context, action: /** @type {Action} */ ('stream') };
  if (status.state === 'error' && (status.reason === 'budget_exhausted' || status.reason === 'insufficient_funds')) {
    return sentence(status.reason, c);
  }
  if (status.state === 'error' && status.reason === '' && context.error) return sentence(context.error, c);
  if (status.state === 'signed-out') return say(STATUS['signed-out:signed_out'], SIGN_IN);
  const text = STATUS[`${status.state}:${status.reason}`];
  return say(text ?? 'Not paying.');
}
