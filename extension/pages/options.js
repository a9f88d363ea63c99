/// <reference types="chrome" />
// The options page: the service URL, the hourly rate and the monthly budget.

import { serviceUrls } from '../shared/links.js';
import { ask, byId, codeOf, explain } from '../shared/ui.js';

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

/** @param {string} text @param {string} [code] */
function say(text, code = '') {
  saved.textContent = text;
  saved.dataset.code = code;
}

async function load() {
  const o = await ask({ type: 'ui/options' });
  serviceUrl.value = o.serviceUrl;
  rate.value = o.rate;
  budget.value = o.budget;
  for (const c of document.querySelectorAll('.currency')) c.textContent = o.currency ?? 'USD';
  showOneTime(o);
  note.textContent = o.signedIn ? '' : 'Sign in from the toolbar popup to change your limits.';
}

/** @param {any} o */
function showOneTime(o) {
  dailyCap.value = o.dailyCap;
  autoSpentToday.textContent = o.autoSpentToday ? `${o.autoSpentToday} ${o.currency ?? 'USD'}` : '—';
  const rows = o.autoApprove.map((/** @type {{origin: string, minor: string, limit: string}} */ site) => {
    const li = document.createElement('li');
    li.dataset.origin = site.origin;
    li.dataset.minor = site.minor;
    li.textContent = `${site.origin}: up to ${site.limit} ${o.currency ?? ''} without asking `;
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'link';
    remove.textContent = 'Ask every time';
    remove.addEventListener('click', async () => {
      try {
        showOneTime({ ...o, ...(await ask({ type: 'ui/auto-approve-clear', origin: site.origin })) });
        say(`Saved: ${site.origin} asks every time.`);
      } catch (error) {
        say(`Not saved: ${explain(error)}`, codeOf(error));
      }
    });
    li.append(remove);
    return li;
  });
  autoApproveSites.replaceChildren(...rows);
}

saveDailyCap.addEventListener('click', async () => {
  try {
    await ask({ type: 'ui/daily-cap', cap: dailyCap.value });
    await load();
    say(`Saved: at most ${dailyCap.value} a day is approved without asking.`);
  } catch (error) {
    say(`Not saved: ${explain(error)}`, codeOf(error));
  }
});

saveServiceUrl.addEventListener('click', async () => {
  try {
    const { base } = serviceUrls(serviceUrl.value);
    const origins = [`${new URL(base).origin}/*`];
    // A service outside the built-in local hosts needs the reader's permission to be reached.
    if (!(await chrome.permissions.contains({ origins }))) {
      const granted = await chrome.permissions.request({ origins });
      if (!granted) {
        say('Not saved: the extension needs permission to reach that service.', 'permission_denied');
        return;
      }
    }
    const r = await ask({ type: 'ui/service-url', url: base });
    serviceUrl.value = r.serviceUrl;
    // A session belongs to the service that issued it: another service means signing in again.
    say(`Saved: using ${r.serviceUrl}.${r.signedOut ? ' You are signed out: sign in to this service from the toolbar popup.' : ''}`);
    await load();
  } catch (error) {
    if (error instanceof TypeError) say(`Not saved: ${error.message}`, 'invalid_input');
    else say(`Not saved: ${explain(error)}`, codeOf(error));
  }
});

saveLimits.addEventListener('click', async () => {
  try {
    await ask({ type: 'ui/limits', rate: rate.value, budget: budget.value });
    say('Saved: your limits apply at once.');
    await load();
  } catch (error) {
    say(`Not saved: ${explain(error)}`, codeOf(error));
  }
});

await load().catch((error) => say(explain(error), codeOf(error)));
