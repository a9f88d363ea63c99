/// <reference types="chrome" />
// Helpers for the extension's own pages: one way to ask the background, one reply shape.

/**
 * Send a UI message to the background; resolve with its value or reject with {code, message}.
 * @param {import('./messages.js').UiMessage} message
 * @returns {Promise<any>}
 */
export async function ask(message) {
  /** @type {import('./messages.js').Reply | undefined} */
  let reply;
  try {
    reply = await chrome.runtime.sendMessage(message);
  } catch (error) {
    throw new UiError('extension_unavailable', `The extension's background did not answer: ${String(error)}`);
  }
  if (!reply || typeof reply !== 'object') throw new UiError('extension_unavailable', 'No answer from the background.');
  if (reply.ok) return reply.value;
  throw new UiError(reply.error.code, reply.error.message);
}

export class UiError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

/** Clear messages for the failures a reader meets. @type {Record<string, string>} */
const FRIENDLY = {
  service_unreachable: 'The Trickle service cannot be reached. Check the service URL in Options.',
  signed_out: 'You are signed out: sign in first.',
  unauthenticated: 'Your session ended: sign in again.',
  session_origin_mismatch: 'The service URL changed: sign in to the new service.',
  invalid_credentials: 'Wrong email or password.',
  email_taken: 'An account with this email already exists: sign in instead.',
  rate_limited: 'Too many attempts: wait a few minutes and try again.',
  voucher_invalid: 'This voucher code is not valid.',
  voucher_already_redeemed: 'This voucher has already been redeemed.',
  insufficient_funds: 'Your balance is too low.',
  budget_exhausted: 'This month’s budget is reached.',
  site_disabled: 'Payments to this site are off.',
  not_monetized: 'This tab has no monetized page.',
  invalid_amount: 'Write amounts like 0.60.',
  payee_not_found: 'The service does not know this site’s payee.',
  declined: 'Declined.',
  invalid_request: 'The page asked for a payment the extension cannot make.',
  not_found: 'This payment request is no longer waiting.',
  busy: 'Another payment request is waiting for an answer.',
};

/** @param {unknown} error */
export function explain(error) {
  if (error instanceof UiError) {
    const friendly = FRIENDLY[error.code];
    if (error.code === 'validation_failed' || error.code === 'invalid_amount') return error.message;
    return friendly ?? error.message;
  }
  return String(error);
}

/** @param {unknown} error */
export function codeOf(error) {
  return error instanceof UiError ? error.code : 'error';
}

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new (...args: any[]) => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} missing`);
  return el;
}
