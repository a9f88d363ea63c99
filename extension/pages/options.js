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
  note.textContent = o.signedIn ? '' : 'Sign in from the toolbar popup to change your limits.';
}

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
    say(`Saved: using ${r.serviceUrl}.`);
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
