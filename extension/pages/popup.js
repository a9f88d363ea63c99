/// <reference types="chrome" />
// The toolbar popup. Opened as a normal tab (as the end-to-end tests do) it takes the tab to show
// from `?tab=<tabId>`; otherwise the active tab of the last focused normal window.

import { formatMinor } from '../shared/amounts.js';
import { isPending, topupText } from '../shared/topups.js';
import { UiError, ask, byId, codeOf, explain } from '../shared/ui.js';

const el = {
  connection: byId('connection', HTMLElement),
  signedOut: byId('signed-out-view', HTMLElement),
  signedIn: byId('signed-in-view', HTMLElement),
  authForm: byId('auth-form', HTMLFormElement),
  email: byId('email', HTMLInputElement),
  password: byId('password', HTMLInputElement),
  signUp: byId('sign-up', HTMLButtonElement),
  authError: byId('auth-error', HTMLElement),
  accountEmail: byId('account-email', HTMLElement),
  signOut: byId('sign-out', HTMLButtonElement),
  balance: byId('balance', HTMLElement),
  monthSpent: byId('month-spent', HTMLElement),
  monthBudget: byId('month-budget', HTMLElement),
  globalPause: byId('global-pause', HTMLInputElement),
  tabStatus: byId('tab-status', HTMLElement),
  tabSent: byId('tab-sent', HTMLElement),
  siteControls: byId('site-controls', HTMLFieldSetElement),
  siteOrigin: byId('site-origin', HTMLElement),
  siteEnabled: byId('site-enabled', HTMLInputElement),
  siteRate: byId('site-rate', HTMLInputElement),
  siteRateSave: byId('site-rate-save', HTMLButtonElement),
  siteError: byId('site-error', HTMLElement),
  voucherForm: byId('voucher-form', HTMLFormElement),
  voucherCode: byId('voucher-code', HTMLInputElement),
  voucherResult: byId('voucher-result', HTMLElement),
  history: byId('history', HTMLUListElement),
  oneTimeControls: byId('one-time-controls', HTMLFieldSetElement),
  tipForm: byId('tip-form', HTMLFormElement),
  tipAmount: byId('tip-amount', HTMLInputElement),
  tipResult: byId('tip-result', HTMLElement),
  autoApprove: byId('site-auto-approve', HTMLInputElement),
  autoApproveSave: byId('site-auto-approve-save', HTMLButtonElement),
  autoApproveResult: byId('auto-approve-result', HTMLElement),
};

/** @type {number | null} */
let tabId = null;
let busy = 0;
/** @type {any} */
let last = null;

async function findTab() {
  const param = new URLSearchParams(location.search).get('tab');
  if (param && /^[0-9]{1,12}$/.test(param)) return Number(param);
  const [tab] = await chrome.tabs.query({ active: true, lastFocusedWindow: true, windowType: 'normal' });
  return tab?.id ?? null;
}

/**
 * @param {string | null | undefined} minor
 * @param {{currency: string, scale: number} | null | undefined} asset
 */
function money(minor, asset) {
  if (minor == null || !asset) return '—';
  return `${formatMinor(minor, asset.scale)} ${asset.currency}`;
}

/**
 * @param {HTMLElement} node
 * @param {string | null | undefined} minor
 * @param {{currency: string, scale: number} | null | undefined} asset
 */
function showAmount(node, minor, asset) {
  node.dataset.minor = minor ?? '';
  node.textContent = money(minor, asset);
}

/** @param {any} s */
function render(s) {
  last = s;
  el.signedOut.hidden = s.signedIn;
  el.signedIn.hidden = !s.signedIn;
  el.connection.hidden = !s.connectionError;
  el.connection.textContent = s.connectionError ? `The Trickle service at ${s.serviceUrl} cannot be reached; retrying…` : '';
  el.accountEmail.textContent = s.email ?? '';
  const asset = s.money ?? s.settings;
  showAmount(el.balance, s.money?.balance, asset);
  showAmount(el.monthSpent, s.money?.monthSpent, asset);
  showAmount(el.monthBudget, s.money?.monthBudget ?? s.settings?.budget, asset);
  if (!busy) el.globalPause.checked = s.settings?.paused ?? false;
  el.globalPause.disabled = !s.signedIn;

  const tab = s.tab;
  el.tabStatus.dataset.state = tab.state;
  el.tabStatus.dataset.reason = tab.reason;
  el.tabStatus.textContent = tab.text;
  el.tabSent.dataset.minor = tab.sent;
  el.tabSent.textContent = asset ? money(tab.sent, asset) : tab.sent;
  el.siteControls.disabled = !tab.origin || !s.signedIn;
  el.siteOrigin.textContent = tab.origin ?? 'No monetized site';
  if (!busy) el.siteEnabled.checked = tab.siteEnabled;
  if (!busy && document.activeElement !== el.siteRate) el.siteRate.value = tab.siteRate;
  el.oneTimeControls.disabled = !tab.origin || !s.signedIn;
  if (!busy && document.activeElement !== el.autoApprove) el.autoApprove.value = tab.autoApprove ?? '';

  const rows = s.history.map((/** @type {{origin: string, minor: string, oneTime?: string}} */ entry) => {
    const li = document.createElement('li');
    li.dataset.origin = entry.origin;
    li.dataset.minor = entry.minor;
    li.dataset.oneTimeMinor = entry.oneTime ?? '0';
    const name = document.createElement('span');
    name.textContent = entry.origin;
    const amount = document.createElement('span');
    amount.textContent = asset ? money(entry.minor, asset) : entry.minor;
    if (entry.oneTime && entry.oneTime !== '0') {
      const part = document.createElement('span');
      part.className = 'one-time';
      part.textContent = ` (one-time ${asset ? money(entry.oneTime, asset) : entry.oneTime})`;
      amount.append(part);
    }
    li.append(name, amount);
    return li;
  });
  el.history.replaceChildren(...rows);
}

async function refresh() {
  try {
    render(await ask({ type: 'ui/state', tabId }));
  } catch (error) {
    el.tabStatus.dataset.state = 'error';
    el.tabStatus.dataset.reason = '';
    el.tabStatus.textContent = explain(error);
  }
}

/**
 * Run a user action: mark busy so polling does not overwrite the controls, then refresh.
 * @param {() => Promise<void>} action
 */
async function act(action) {
  busy += 1;
  try {
    await action();
  } finally {
    busy -= 1;
    await refresh();
  }
}

/** @param {'ui/sign-in' | 'ui/sign-up'} type */
function authenticate(type) {
  return act(async () => {
    el.authError.textContent = '';
    el.authError.dataset.code = '';
    try {
      await ask({ type, email: el.email.value.trim(), password: el.password.value });
      el.password.value = '';
    } catch (error) {
      el.authError.dataset.code = codeOf(error);
      el.authError.textContent = explain(error);
    }
  });
}

el.authForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void authenticate('ui/sign-in');
});
el.signUp.addEventListener('click', () => void authenticate('ui/sign-up'));
el.signOut.addEventListener('click', () => void act(async () => void (await ask({ type: 'ui/sign-out' }))));

el.globalPause.addEventListener('change', () =>
  act(async () => {
    try {
      await ask({ type: 'ui/pause', paused: el.globalPause.checked });
    } catch (error) {
      el.connection.hidden = false;
      el.connection.textContent = explain(error);
    }
  }),
);

function saveSite() {
  return act(async () => {
    el.siteError.textContent = '';
    if (tabId === null) return;
    try {
      const rate = el.siteRate.value.trim();
      await ask({ type: 'ui/site', tabId, enabled: el.siteEnabled.checked, rate: rate || null });
    } catch (error) {
      el.siteError.textContent = explain(error);
    }
  });
}
el.siteEnabled.addEventListener('change', () => void saveSite());
el.siteRateSave.addEventListener('click', () => void saveSite());

el.voucherForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void act(async () => {
    el.voucherResult.textContent = '';
    el.voucherResult.dataset.code = '';
    try {
      const r = await ask({ type: 'ui/redeem', code: el.voucherCode.value });
      el.voucherResult.textContent = `Added ${money(r.amount, r)}. Balance: ${money(r.balance, r)}.`;
      el.voucherCode.value = '';
    } catch (error) {
      el.voucherResult.dataset.code = codeOf(error);
      el.voucherResult.textContent = explain(error);
    }
  });
});

el.tipForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void act(async () => {
    el.tipResult.textContent = '';
    el.tipResult.dataset.code = '';
    if (tabId === null) return;
    el.tipResult.textContent = 'Sending…';
    try {
      const r = await ask({ type: 'ui/tip', tabId, amount: el.tipAmount.value });
      el.tipResult.textContent = `Tipped ${money(r.amount, r)} to ${r.origin}. Thank you!`;
      el.tipAmount.value = '';
    } catch (error) {
      el.tipResult.dataset.code = codeOf(error);
      el.tipResult.textContent = `No tip sent: ${explain(error)}`;
    }
  });
});

el.autoApproveSave.addEventListener('click', () =>
  act(async () => {
    el.autoApproveResult.textContent = '';
    el.autoApproveResult.dataset.code = '';
    if (tabId === null) return;
    try {
      const r = await ask({ type: 'ui/auto-approve', tabId, limit: el.autoApprove.value });
      el.autoApproveResult.textContent = r.limit
        ? `Payments of up to ${r.limit} to ${r.origin} are approved without asking (within your daily cap).`
        : `Every payment to ${r.origin} asks you first.`;
    } catch (error) {
      el.autoApproveResult.dataset.code = codeOf(error);
      el.autoApproveResult.textContent = `Not saved: ${explain(error)}`;
    }
  }),
);

// --- top up by card (docs/funding.md) -------------------------------------------------------

const card = {
  box: byId('card-topup', HTMLDivElement),
  presets: byId('card-presets', HTMLDivElement),
  status: byId('topup-status', HTMLElement),
};
/** @type {import('../shared/topups.js').TopupOptions | null} */
let cardOptions = null;
/** The account the card options were fetched for ('' when none). */
let cardOptionsFor = '';
/** @type {import('../shared/topups.js').Topup | null} the latest top-up */
let topup = null;
let topupBusy = false;

/** @param {string} text @param {string} state @param {string} [code] */
function showTopup(text, state, code = '') {
  card.status.textContent = text;
  card.status.dataset.state = state;
  card.status.dataset.code = code;
}

function renderCard() {
  const offered = cardOptions?.card ?? null;
  card.box.hidden = !last?.signedIn || offered === null;
  if (offered === null) return;
  const buttons = offered.presets.map((minor) => {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'secondary';
    button.dataset.amountMinor = minor;
    button.textContent = `${formatMinor(minor, offered.scale)} ${offered.currency}`;
    button.disabled = Boolean(cardOptions?.frozen);
    button.addEventListener('click', () => void topUp(minor));
    return button;
  });
  card.presets.replaceChildren(...buttons);
  if (topup) showTopup(topupText(topup), topup.state);
  else if (cardOptions?.frozen) showTopup(explain(new UiError('account_frozen', '')), 'frozen', 'account_frozen');
}

/** Card options once per account; the latest top-up's state while it is pending. */
async function refreshCard() {
  if (topupBusy) return;
  topupBusy = true;
  try {
    if (!last?.signedIn) {
      cardOptions = null;
      cardOptionsFor = '';
      topup = null;
    } else if (cardOptionsFor !== last.email) {
      cardOptions = await ask({ type: 'ui/topup-options' });
      cardOptionsFor = last.email;
      topup = await ask({ type: 'ui/topup-status' });
    } else if (isPending(topup)) {
      topup = await ask({ type: 'ui/topup-status' });
    }
    renderCard();
  } catch (error) {
    showTopup(explain(error), 'error', codeOf(error));
  } finally {
    topupBusy = false;
  }
}

/** @param {string} amountMinor */
function topUp(amountMinor) {
  return act(async () => {
    showTopup('Opening Stripe’s payment page…', 'opening');
    try {
      topup = await ask({ type: 'ui/topup', amountMinor });
      renderCard();
    } catch (error) {
      showTopup(`No top-up: ${explain(error)}`, 'error', codeOf(error));
    }
  });
}

tabId = await findTab();
await refresh();
await refreshCard();
setInterval(() => {
  if (!busy) void refresh().then(refreshCard);
}, 1000);

