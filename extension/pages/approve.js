/// <reference types="chrome" />
// The approval window of a one-time payment: an extension page in its own popup window, opened
// by the background (chrome.windows.create), so that the asking page can neither draw, cover nor
// click it. It shows what the background holds for `?request=<id>` — the site's origin (from the
// browser, not from the page), the payee, the amount and the description — and sends the
// reader's choice. Closing the window declines.

import { UiError, ask, byId, codeOf, explain } from '../shared/ui.js';

const origin = byId('approve-origin', HTMLElement);
const payee = byId('approve-payee', HTMLElement);
const amount = byId('approve-amount', HTMLElement);
const description = byId('approve-description', HTMLElement);
const approve = byId('approve', HTMLButtonElement);
const decline = byId('decline', HTMLButtonElement);
const status = byId('approve-status', HTMLElement);

/**
 * A click must not land on Approve by accident as the window appears. Nor a key: Approve never
 * takes the focus by itself (nothing has it), so a stray Enter or Space pays nothing; the reader
 * clicks Approve, or Tabs to it and presses Enter.
 */
const ARM_DELAY_MS = 500;

const request = new URLSearchParams(location.search).get('request') ?? '';

/** @param {string} text @param {string} [code] */
function say(text, code = '') {
  status.textContent = text;
  status.dataset.code = code;
}

/** @param {boolean} approved */
async function choose(approved) {
  approve.disabled = true;
  decline.disabled = true;
  say(approved ? 'Paying…' : 'Declining…');
  try {
    const outcome = await ask({ type: 'ui/payment-decide', request, approve: approved });
    if (outcome.ok) say(`Paid ${outcome.amount} to ${outcome.origin}.`);
    else if (outcome.code === 'declined') say('Declined.', 'declined');
    else say(`Not paid: ${explain(new UiError(outcome.code, outcome.message))}`, outcome.code);
  } catch (error) {
    say(explain(error), codeOf(error));
  }
}

approve.addEventListener('click', () => void choose(true));
decline.addEventListener('click', () => void choose(false));

try {
  const d = await ask({ type: 'ui/payment-get', request });
  origin.textContent = d.origin;
  payee.textContent = d.payee;
  amount.textContent = d.amount;
  amount.dataset.minor = d.amountMinor;
  description.textContent = d.description || '(no description)';
  document.title = `Pay ${d.amount} to ${d.origin}? — Trickle`;
  decline.disabled = false;
  setTimeout(() => {
    approve.disabled = false;
  }, ARM_DELAY_MS);
} catch (error) {
  say(explain(error), codeOf(error));
}
