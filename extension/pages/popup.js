/// <reference types="chrome" />
// The toolbar popup. Opened as a normal tab (as the end-to-end tests do) it takes the tab to show
// from `?tab=<tabId>`; otherwise the active tab of the last focused normal window.

import { majorToMinor } from '../shared/amounts.js';
import { formatMoney } from '../shared/format.js';
import { sentence, statusSentence } from '../shared/sentences.js';
import { isPending, topupText } from '../shared/topups.js';
import { ask, byId, codeOf, explain, showMoney, showSentence } from '../shared/ui.js';

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
  budgetNote: byId('budget-note', HTMLElement),
  tabStatus: byId('tab-status', HTMLElement),
  tabSent: byId('tab-sent', HTMLElement),
  tabRateLine: byId('tab-rate-line', HTMLElement),
  tabRate: byId('tab-rate', HTMLElement),
  tabRateSource: byId('tab-rate-source', HTMLElement),
  siteControls: byId('site-controls', HTMLFieldSetElement),
  siteOrigin: byId('site-origin', HTMLElement),
  siteEnabled: byId('site-enabled', HTMLInputElement),
  siteRate: byId('site-rate', HTMLInputElement),
  siteRateSave: byId('site-rate-save', HTMLButtonElement),
  siteError: byId('site-error', HTMLElement),
  voucherView: byId('voucher-view', HTMLElement),
  voucherForm: byId('voucher-form', HTMLFormElement),
  voucherCode: byId('voucher-code', HTMLInputElement),
  voucherResult: byId('voucher-result', HTMLElement),
  history: byId('history', HTMLUListElement),
  tokensLine: byId('tokens-line', HTMLElement),
  tokensHeld: byId('tokens-held', HTMLElement),
  tokensHint: byId('tokens-hint', HTMLElement),
  tokensError: byId('tokens-error', HTMLElement),
  tabWay: byId('tab-way', HTMLElement),
  recentTitle: byId('recent-title', HTMLElement),
  recent: byId('recent-payments', HTMLUListElement),
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
 * @param {import('../shared/format.js').Asset | null | undefined} asset
 */
function money(minor, asset) {
  return minor == null || !asset ? '—' : formatMoney(minor, asset);
}

/** @returns {import('../shared/format.js').Asset | null} */
function assetOf(/** @type {any} */ s) {
  return s?.money ?? s?.settings ?? null;
}

/**
 * What a sentence needs to know of the reader: what they were doing, their money as last known,
 * and the amount they typed (when it is one).
 * @param {import('../shared/sentences.js').Action} action
 * @param {string} [typed]  an amount the reader typed, major units
 * @returns {import('../shared/sentences.js').Context}
 */
function context(action, typed) {
  const asset = assetOf(last);
  /** @type {string | null} */
  let amountMinor = null;
  if (typed !== undefined && asset) {
    try {
      amountMinor = majorToMinor(typed, asset.scale);
    } catch {
      amountMinor = null;
    }
  }
  return { action, asset, money: last?.money ?? null, amountMinor };
}

/** @param {any} s */
function render(s) {
  last = s;
  el.signedOut.hidden = s.signedIn;
  el.signedIn.hidden = !s.signedIn;
  el.connection.hidden = !s.connectionError;
  if (s.connectionError) showSentence(el.connection, sentence(s.connectionError), { code: s.connectionError });
  el.accountEmail.textContent = s.email ?? '';
  el.voucherView.hidden = !s.signedIn;
  const asset = assetOf(s);
  showMoney(el.balance, s.money?.balance, asset);
  showMoney(el.monthSpent, s.money?.monthSpent, asset);
  showMoney(el.monthBudget, s.money?.monthBudget ?? s.settings?.budget, asset);
  if (!busy) el.globalPause.checked = s.settings?.paused ?? false;
  el.globalPause.disabled = !s.signedIn;
  // This month's budget spent: when it starts again, and where it is raised.
  // (Said once: not here when this tab's status says it already.)
  const noteNeeded = s.budgetReached && s.tab.reason !== 'budget_exhausted';
  el.budgetNote.hidden = !noteNeeded;
  if (noteNeeded) {
    showSentence(el.budgetNote, sentence('budget_exhausted', { ...context('stream'), money: s.money }), { code: 'budget_exhausted' });
  }

  // Tokens held, and why the wallet could not refill when it could not.
  const tokens = s.tokens;
  const privately = Boolean(s.signedIn && tokens?.privatePayments);
  el.tokensLine.hidden = !privately;
  if (privately) {
    el.tokensHeld.dataset.count = String(tokens.held);
    el.tokensHeld.dataset.minor = tokens.heldMinor ?? '';
    el.tokensHeld.textContent = `${tokens.held} token${tokens.held === 1 ? '' : 's'} held` + (tokens.heldMinor && asset ? ` (${money(tokens.heldMinor, asset)})` : '');
    el.tokensHint.textContent = `at most ${tokens.reserve} kept; the service cannot tell which sites they pay`;
  }
  const walletError = privately && tokens.error && tokens.error !== 'service_unreachable' ? tokens.error : null;
  el.tokensError.hidden = walletError === null;
  if (walletError) showSentence(el.tokensError, sentence(walletError, context('stream')), { code: walletError });

  const tab = s.tab;
  el.tabWay.dataset.way = tab.origin && s.signedIn ? (privately ? 'private' : 'identified') : '';
  el.tabWay.textContent = el.tabWay.dataset.way === 'private' ? '(privately, with tokens)' : el.tabWay.dataset.way ? '(from your account)' : '';
  el.tabStatus.dataset.state = tab.state;
  el.tabStatus.dataset.reason = tab.reason;
  showSentence(el.tabStatus, statusSentence(tab, { ...context('stream'), error: tab.error }), { code: tab.error ?? '' });
  showMoney(el.tabSent, tab.sent, asset);
  // The hourly rate this tab's site is paid at: its own, or the reader's.
  el.tabRateLine.hidden = !tab.origin || !s.signedIn || !tab.rate;
  if (tab.rate) {
    showMoney(el.tabRate, tab.rate.minor, asset);
    el.tabRate.dataset.source = tab.rate.source;
    el.tabRateSource.textContent = tab.rate.source === 'site' ? '(your rate for this site)' : '(your usual rate)';
  }
  el.siteControls.disabled = !tab.origin || !s.signedIn;
  el.siteOrigin.textContent = tab.origin ?? 'No monetized site';
  if (!busy) el.siteEnabled.checked = tab.siteEnabled;
  if (!busy && document.activeElement !== el.siteRate) el.siteRate.value = tab.siteRate;
  el.oneTimeControls.disabled = !tab.origin || !s.signedIn;
  if (!busy && document.activeElement !== el.autoApprove) el.autoApprove.value = tab.autoApprove ?? '';

  const rows = s.history.map((/** @type {{origin: string, minor: string, oneTime?: string, private?: string}} */ entry) => {
    const li = document.createElement('li');
    li.dataset.origin = entry.origin;
    li.dataset.minor = entry.minor;
    li.dataset.oneTimeMinor = entry.oneTime ?? '0';
    li.dataset.privateMinor = entry.private ?? '0';
    const name = document.createElement('span');
    name.textContent = entry.origin;
    const amount = document.createElement('span');
    const total = document.createElement('span');
    showMoney(total, entry.minor, asset);
    delete total.dataset.minor;
    amount.append(total);
    if (entry.oneTime && entry.oneTime !== '0') {
      const part = document.createElement('span');
      part.className = 'one-time';
      part.textContent = ` (one-time ${money(entry.oneTime, asset)})`;
      amount.append(part);
    }
    if (entry.private && entry.private !== '0') {
      const part = document.createElement('span');
      part.className = 'private';
      part.textContent = entry.private === entry.minor ? ' (all privately)' : ` (privately ${money(entry.private, asset)})`;
      amount.append(part);
    }
    li.append(name, amount);
    return li;
  });
  el.history.replaceChildren(...rows);

  // Which way each one-time payment went.
  const recent = /** @type {any[]} */ (s.payments ?? []);
  el.recentTitle.hidden = recent.length === 0;
  el.recent.replaceChildren(
    ...recent.map((r) => {
      const li = document.createElement('li');
      li.dataset.way = r.way ?? 'identified';
      li.dataset.kind = r.kind;
      li.dataset.origin = r.origin;
      const way = r.way === 'private' ? 'privately, with tokens' : 'from your account';
      li.textContent = `${r.kind === 'tip' ? 'Tip' : 'Purchase'} to ${r.origin}: ${money(r.amountMinor, r)}, ${way}`;
      return li;
    }),
  );
}

async function refresh() {
  try {
    render(await ask({ type: 'ui/state', tabId }));
  } catch (error) {
    el.tabStatus.dataset.state = 'error';
    el.tabStatus.dataset.reason = '';
    showSentence(el.tabStatus, explain(error), { code: codeOf(error) });
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
    showSentence(el.authError, '');
    try {
      await ask({ type, email: el.email.value.trim(), password: el.password.value });
      el.password.value = '';
    } catch (error) {
      showSentence(el.authError, explain(error, context(type === 'ui/sign-in' ? 'sign-in' : 'sign-up')), { code: codeOf(error) });
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
      showSentence(el.connection, explain(error, context('pause')), { code: codeOf(error) });
    }
  }),
);

function saveSite() {
  return act(async () => {
    showSentence(el.siteError, '');
    if (tabId === null) return;
    try {
      const rate = el.siteRate.value.trim();
      await ask({ type: 'ui/site', tabId, enabled: el.siteEnabled.checked, rate: rate || null });
    } catch (error) {
      showSentence(el.siteError, explain(error, context('site')), { code: codeOf(error), prefix: 'Not saved.' });
    }
  });
}
el.siteEnabled.addEventListener('change', () => void saveSite());
el.siteRateSave.addEventListener('click', () => void saveSite());

el.voucherForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void act(async () => {
    showSentence(el.voucherResult, '');
    try {
      const r = await ask({ type: 'ui/redeem', code: el.voucherCode.value });
      showSentence(el.voucherResult, `Added ${money(r.amount, r)}. Your balance is ${money(r.balance, r)}.`);
      el.voucherCode.value = '';
    } catch (error) {
      showSentence(el.voucherResult, explain(error, context('redeem')), { code: codeOf(error) });
    }
  });
});

el.tipForm.addEventListener('submit', (event) => {
  event.preventDefault();
  void act(async () => {
    if (tabId === null) return;
    showSentence(el.tipResult, 'Sending…');
    const typed = el.tipAmount.value;
    try {
      const r = await ask({ type: 'ui/tip', tabId, amount: typed });
      showSentence(el.tipResult, `Tipped ${money(r.amount, r)} to ${r.origin}${r.way === "private" ? ", privately with tokens" : ""}. Thank you!`);
      el.tipAmount.value = '';
    } catch (error) {
      showSentence(el.tipResult, explain(error, context('tip', typed)), { code: codeOf(error), prefix: 'No tip sent.' });
    }
  });
});

el.autoApproveSave.addEventListener('click', () =>
  act(async () => {
    showSentence(el.autoApproveResult, '');
    if (tabId === null) return;
    try {
      const r = await ask({ type: 'ui/auto-approve', tabId, limit: el.autoApprove.value });
      showSentence(
        el.autoApproveResult,
        r.limitMinor
          ? `Payments of up to ${money(r.limitMinor, assetOf(last))} to ${r.origin} are approved without asking (within your daily cap).`
          : `Every payment to ${r.origin} asks you first.`,
      );
    } catch (error) {
      showSentence(el.autoApproveResult, explain(error, context('auto-approve')), { code: codeOf(error), prefix: 'Not saved.' });
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

/**
 * @param {string | import('../shared/sentences.js').Sentence} said
 * @param {string} state
 * @param {string} [code]
 * @param {string} [prefix]
 */
function showTopup(said, state, code = '', prefix = '') {
  card.status.dataset.state = state;
  showSentence(card.status, said, { code, prefix });
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
    showMoney(button, minor, offered);
    delete button.dataset.minor;
    button.disabled = Boolean(cardOptions?.frozen);
    button.addEventListener('click', () => void topUp(minor));
    return button;
  });
  card.presets.replaceChildren(...buttons);
  if (topup) showTopup(topupText(topup), topup.state);
  else if (cardOptions?.frozen) showTopup(sentence('account_frozen'), 'frozen', 'account_frozen');
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
    showTopup(explain(error, context('topup')), 'error', codeOf(error));
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
      showTopup(explain(error, context('topup')), 'error', codeOf(error), 'No top-up.');
    }
  });
}

tabId = await findTab();
await refresh();
await refreshCard();
setInterval(() => {
  if (!busy) void refresh().then(refreshCard);
}, 1000);

