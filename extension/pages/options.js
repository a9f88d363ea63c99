/// <reference types="chrome" />
// The options page: the service URL, the hourly rate and the monthly budget, and the one-time
// payments' daily cap and per-site limits.

import { formatMoney } from '../shared/format.js';
import { serviceUrls } from '../shared/links.js';
import { sentence } from '../shared/sentences.js';
import { ask, byId, codeOf, explain, showMoney, showSentence } from '../shared/ui.js';

const serviceUrl = byId('service-url', HTMLInputElement);
const saveServiceUrl = byId('save-service-url', HTMLButtonElement);
const rate = byId('rate', HTMLInputElement);
const budget = byId('budget', HTMLInputElement);
const saveLimits = byId('save-limits', HTMLButtonElement);
const saved = byId('saved', HTMLElement);
const note = byId('limits-note', HTMLElement);
const dailyCap = byId('daily-cap', HTMLInputElement);
const saveDailyCap = byId('save-daily-cap', HTMLButtonElement);
const autoSpentToday = byId('auto-spent-today', HTMLElement);
const autoApproveSites = byId('auto-approve-sites', HTMLUListElement);
const privatePayments = byId('private-payments', HTMLInputElement);
const tokenReserve = byId('token-reserve', HTMLInputElement);
const saveTokenReserve = byId('save-token-reserve', HTMLButtonElement);

/** @type {import('../shared/format.js').Asset | null} */
let asset = null;

/**
 * @param {string | import('../shared/sentences.js').Sentence} said
 * @param {string} [code]
 * @param {string} [prefix]
 */
function say(said, code = '', prefix = '') {
  showSentence(saved, said, { code, prefix, where: 'options' });
}

/**
 * A failure, in words: what the reader was doing picks them.
 * @param {unknown} error
 * @param {import('../shared/sentences.js').Action} action
 */
function refused(error, action) {
  say(explain(error, { action, asset }), codeOf(error), 'Not saved.');
}

async function load() {
  const o = await ask({ type: 'ui/options' });
  serviceUrl.value = o.serviceUrl;
  rate.value = o.rate;
  budget.value = o.budget;
  asset = o.currency && typeof o.scale === 'number' ? { currency: o.currency, scale: o.scale } : null;
  for (const c of document.querySelectorAll('.currency')) c.textContent = o.currency ?? 'USD';
  showOneTime(o);
  privatePayments.checked = o.privatePayments === true;
  tokenReserve.value = String(o.tokenReserve ?? '');
  note.textContent = o.signedIn ? '' : 'Sign in from the toolbar popup to change your limits.';
}

/** @param {any} o */
function showOneTime(o) {
  dailyCap.value = o.dailyCap;
  showMoney(autoSpentToday, o.autoSpentTodayMinor, asset);
  const rows = o.autoApprove.map((/** @type {{origin: string, minor: string}} */ site) => {
    const li = document.createElement('li');
    li.dataset.origin = site.origin;
    li.dataset.minor = site.minor;
    li.textContent = `${site.origin}: up to ${asset ? formatMoney(site.minor, asset) : '—'} without asking `;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = 'Ask every time';
    remove.setAttribute('aria-label', `Ask every time for ${site.origin}`);
    remove.addEventListener('click', async () => {
      try {
        showOneTime({ ...o, ...(await ask({ type: 'ui/auto-approve-clear', origin: site.origin })) });
        say(`Saved: ${site.origin} asks every time.`);
      } catch (error) {
        refused(error, 'auto-approve');
      }
    });
    li.append(remove);
    return li;
  });
  autoApproveSites.replaceChildren(...rows);
}

saveDailyCap.addEventListener('click', async () => {
  try {
    const o = await ask({ type: 'ui/daily-cap', cap: dailyCap.value });
    await load();
    const cap = o.dailyCapMinor && asset ? formatMoney(o.dailyCapMinor, asset) : dailyCap.value;
    say(`Saved: at most ${cap} a day is approved without asking.`);
  } catch (error) {
    refused(error, 'daily-cap');
  }
});

privatePayments.addEventListener('change', async () => {
  try {
    const r = await ask({ type: 'ui/private-payments', enabled: privatePayments.checked });
    say(r.privatePayments ? 'Saved: sites are paid privately, with tokens.' : 'Saved: sites are paid from your account.');
  } catch (error) {
    refused(error, 'other');
  }
  await load();
});

saveTokenReserve.addEventListener('click', async () => {
  try {
    const o = await ask({ type: 'ui/token-reserve', reserve: tokenReserve.value });
    say(`Saved: at most ${o.tokenReserve} tokens are kept.`);
    await load();
  } catch (error) {
    refused(error, 'other');
  }
});

saveServiceUrl.addEventListener('click', async () => {
  try {
    const { base } = serviceUrls(serviceUrl.value);
    const origins = [`${new URL(base).origin}/*`];
    // A service outside the built-in local hosts needs the reader's permission to be reached.
    // Asked at once in the click (Firefox refuses a request made after an await); a permission
    // already held is granted without a prompt.
    if (!(await chrome.permissions.request({ origins }))) {
      say(sentence('permission_denied'), 'permission_denied', 'Not saved.');
      return;
    }
    const r = await ask({ type: 'ui/service-url', url: base });
    serviceUrl.value = r.serviceUrl;
    // A session belongs to the service that issued it: another service means signing in again.
    say(`Saved: using ${r.serviceUrl}.${r.signedOut ? ' You are signed out: sign in to this service from the toolbar popup.' : ''}`);
    await load();
  } catch (error) {
    refused(error, 'service-url');
  }
});

saveLimits.addEventListener('click', async () => {
  try {
    await ask({ type: 'ui/limits', rate: rate.value, budget: budget.value });
    say('Saved: your limits apply at once.');
    await load();
  } catch (error) {
    refused(error, 'limits');
  }
});

await load().catch((error) => say(explain(error, { action: 'other' }), codeOf(error)));
// Sent here to raise the budget (a link in the popup or the approval window): the field is ready.
if (location.hash === '#limits') budget.focus();
