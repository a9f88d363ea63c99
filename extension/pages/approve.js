/// <reference types="chrome" />
// The approval window of a one-time payment: an extension page in its own popup window, opened
// by the background (chrome.windows.create), so that the asking page can neither draw, cover nor
// click it. It shows what the background holds for `?request=<id>` — the site's origin (from the
// browser, not from the page), the payee, the amount and the description, and whether the
// extension remembers buying this order on this site before — and sends the reader's choice.
// Closing the window declines.

import { formatMoney } from '../shared/format.js';
import { sentence } from '../shared/sentences.js';
import { ask, byId, codeOf, explain, showMoney, showSentence } from '../shared/ui.js';

const origin = byId('approve-origin', HTMLElement);
const payee = byId('approve-payee', HTMLElement);
const amount = byId('approve-amount', HTMLElement);
const description = byId('approve-description', HTMLElement);
const before = byId('approve-before', HTMLElement);
const way = byId('approve-way', HTMLElement);
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
/** @type {any} the request's details, once known */
let shown = null;

/** @param {string | import('../shared/sentences.js').Sentence} said @param {string} [code] @param {string} [prefix] */
function say(said, code = '', prefix = '') {
  showSentence(status, said, { code, prefix, where: 'approve' });
}

/**
 * Why the payment was refused, in words: the service's own code when the background kept it
 * (a frozen account is a plain "declined" to the page), with the reader's money as now known.
 * @param {{code: string, details?: Record<string, unknown> | null}} outcome
 */
async function refusal(outcome) {
  const code = typeof outcome.details?.cause === 'string' ? outcome.details.cause : outcome.code;
  /** @type {any} */
  let now = null;
  try {
    now = await ask({ type: 'ui/state', tabId: null });
  } catch {
    now = null;
  }
  return sentence(code, {
    action: 'purchase',
    asset: shown,
    amountMinor: shown?.amountMinor ?? null,
    money: now?.money ?? null,
    details: outcome.details ?? null,
  });
}

/** @param {boolean} approved */
async function choose(approved) {
  approve.disabled = true;
  decline.disabled = true;
  say(approved ? 'Paying…' : 'Declining…');
  try {
    const outcome = await ask({ type: 'ui/payment-decide', request, approve: approved });
    if (outcome.ok) say(`Paid ${formatMoney(outcome.paidMinor ?? outcome.amountMinor, outcome)} to ${outcome.origin}${outcome.way === 'private' ? ', privately' : ''}.`);
    else if (outcome.code === 'declined' && !outcome.details?.cause) say(sentence('declined'), 'declined');
    else say(await refusal(outcome), outcome.code, 'Not paid.');
  } catch (error) {
    say(explain(error, { action: 'purchase' }), codeOf(error));
  }
}

approve.addEventListener('click', () => void choose(true));
decline.addEventListener('click', () => void choose(false));

/**
 * "You bought this before": the extension's own history has this order of this site. The site
 * knows its buyers by its own cookie, so in this browser it may ask again.
 * @param {{at: number, amountMinor: string, currency: string, scale: number} | null} bought
 */
function showBoughtBefore(bought) {
  before.hidden = bought === null;
  if (bought === null) return;
  before.dataset.at = String(bought.at);
  const day = new Intl.DateTimeFormat(undefined, { dateStyle: 'long' }).format(new Date(bought.at));
  before.textContent =
    `You bought this before on this site, on ${day} (${formatMoney(bought.amountMinor, bought)}). ` +
    'The site knows buyers by a cookie of its own: in this browser it may not know you, and approving pays again.';
}

/**
 * How it will be paid, said before the reader approves: privately with whole tokens (the price
 * rounded up to whole tokens; the difference goes to the site), or from the reader's account.
 * @param {any} d  the request's details
 */
function showWay(d) {
  const w = d.way;
  way.dataset.way = w?.kind ?? '';
  way.dataset.count = w ? String(w.count) : '';
  if (!w) {
    way.textContent = '';
  } else if (w.kind === 'private') {
    const rounded = w.remainderMinor !== '0' ? ` The price is rounded up to whole tokens: the extra ${formatMoney(w.remainderMinor, d)} goes to the site.` : '';
    way.textContent =
      `Paid privately with ${w.count} token${w.count === 1 ? '' : 's'} (${formatMoney(w.paidMinor, d)}): the service cannot tell it was you.${rounded}`;
  } else if (w.count > 0) {
    way.textContent =
      `Paid from your account, not privately: it would take ${w.count} tokens and you hold ${w.held}. The service will know you paid this site.`;
  } else {
    way.textContent = 'Paid from your account.';
  }
}

try {
  const d = await ask({ type: 'ui/payment-get', request });
  shown = d;
  origin.textContent = d.origin;
  payee.textContent = d.payee;
  showMoney(amount, d.amountMinor, d);
  description.textContent = d.description || '(no description)';
  showBoughtBefore(d.boughtBefore ?? null);
  showWay(d);
  document.title = `Pay ${formatMoney(d.amountMinor, d)} to ${d.origin}? — Trickle`;
  decline.disabled = false;
  setTimeout(() => {
    approve.disabled = false;
  }, ARM_DELAY_MS);
} catch (error) {
  say(explain(error, { action: 'purchase' }), codeOf(error));
}
