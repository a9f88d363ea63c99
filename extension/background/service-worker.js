/// <reference types="chrome" />
// The background service worker: registers every listener synchronously (so a restarted worker
// gets the event that woke it), checks who sent each message, validates it, and hands it to the
// engine. One dispatcher, one reply shape: {ok: true, value} / {ok: false, error: {code, message}}.

import { AmountError } from '../shared/amounts.js';
import { ServiceUrlError, httpOrigin, serviceUrls } from '../shared/links.js';
import { MessageError, fail, isFromContentScript, isFromExtensionPage, ok, parsePageMessage, parseUiMessage } from '../shared/messages.js';
import { TopupAnswerError } from '../shared/topups.js';
import { ApiError } from './api.js';
import * as engine from './engine.js';
import * as payments from './payments.js';
import * as topups from './topups.js';

const EXTENSION_BASE = chrome.runtime.getURL('');
const ready = Promise.all([engine.load(), payments.load()]).catch((error) => {
  console.error('Trickle: could not load its state', error);
});

/**
 * @param {import('../shared/messages.js').UiMessage} message
 * @returns {Promise<unknown>}
 */
async function uiDispatch(message) {
  switch (message.type) {
    case 'ui/state': {
      const s = engine.popupState(message.tabId);
      return { ...s, tab: { ...s.tab, autoApprove: payments.autoApproveFor(s.tab.origin) }, payments: payments.recent() };
    }
    case 'ui/sign-in':
      return engine.signIn('sign-in', message.email, message.password);
    case 'ui/sign-up':
      return engine.signIn('sign-up', message.email, message.password);
    case 'ui/sign-out':
      return engine.signOut();
    case 'ui/redeem':
      return engine.redeem(message.code);
    case 'ui/pause':
      return engine.setPaused(message.paused);
    case 'ui/site':
      return engine.setSite(message.tabId, message.enabled, message.rate);
    case 'ui/options':
      return { ...engine.optionsState(), ...payments.optionsState() };
    case 'ui/service-url': {
      const base = serviceUrls(message.url).base;
      // Signed out of the old service first; then stored (storage.onChanged finds it applied).
      const { signedOut } = await engine.serviceUrlChanged(base);
      await chrome.storage.local.set({ serviceUrl: base });
      return { serviceUrl: base, signedOut };
    }
    case 'ui/limits':
      return engine.setLimits(message.rate, message.budget);
    case 'ui/payment-get':
      return payments.details(message.request);
    case 'ui/payment-decide':
      return payments.decide(message.request, message.approve);
    case 'ui/tip':
      return payments.tip(message.tabId, message.amount);
    case 'ui/auto-approve':
      return payments.setAutoApprove(message.tabId, message.limit);
    case 'ui/auto-approve-clear':
      return payments.clearAutoApprove(message.origin);
    case 'ui/daily-cap':
      return payments.setDailyCap(message.cap);
    case 'ui/topup-options':
      return topups.options();
    case 'ui/topup':
      return topups.start(message.amountMinor);
    case 'ui/topup-status':
      return topups.status();
    case 'ui/private-payments':
      return engine.setPrivatePayments(message.enabled);
    case 'ui/token-reserve':
      return engine.setTokenReserve(message.reserve);
  }
}

/** @param {unknown} error */
function toReply(error) {
  if (error instanceof ApiError || error instanceof AmountError || error instanceof ServiceUrlError) {
    return fail(error.code, error.message, error.details);
  }
  if (error instanceof MessageError || error instanceof TopupAnswerError) return fail(error.code, error.message);
  console.error('Trickle: unexpected error', error);
  return fail('internal', 'Something went wrong in the extension.');
}

chrome.runtime.onMessage.addListener((raw, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id) return false;
  if (isFromExtensionPage(sender, chrome.runtime.id, EXTENSION_BASE)) {
    (async () => {
      await ready;
      return ok(await uiDispatch(parseUiMessage(raw)));
    })().then(sendResponse, (error) => sendResponse(toReply(error)));
    return true;
  }
  if (isFromContentScript(sender, chrome.runtime.id, EXTENSION_BASE)) {
    (async () => {
      await ready;
      const message = parsePageMessage(raw);
      if (message.type === 'page/payment') {
        const origin = httpOrigin(sender.origin && sender.origin !== 'null' ? sender.origin : sender.url);
        void payments.request(message, sender, origin).catch((error) => console.error('Trickle: payment request', error));
        return ok(null);
      }
      if (message.type === 'page/leave') payments.pageLeft(/** @type {number} */ (sender.tab?.id), sender.frameId ?? 0, message.page);
      engine.pageMessage(message, sender);
      return ok(null);
    })().then(sendResponse, (error) => sendResponse(toReply(error)));
    return true;
  }
  return false; // anything else is ignored
});

chrome.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && changes.serviceUrl) {
    void ready.then(() => engine.serviceUrlChanged(changes.serviceUrl.newValue));
  }
  if (area === 'local' && changes.privatePayments) {
    void ready.then(() => engine.privatePaymentsChanged());
  }
});

// Private payments are the default for a new install; an update keeps what the reader had (an
// install from before them: identified, as it was). A value already written is never overwritten.
chrome.runtime.onInstalled.addListener((details) => {
  void (async () => {
    const { privatePayments } = await chrome.storage.local.get(['privatePayments']);
    if (typeof privatePayments === 'boolean') return;
    await chrome.storage.local.set({ privatePayments: details.reason === 'install' });
  })();
});

chrome.tabs.onRemoved.addListener((tabId) => {
  void ready.then(() => {
    payments.tabClosed(tabId);
    engine.removeTab(tabId);
  });
});

// Closing an approval window declines its request.
chrome.windows.onRemoved.addListener((windowId) => {
  void ready.then(() => payments.windowClosed(windowId));
});

chrome.idle.setDetectionInterval(60);
chrome.idle.onStateChanged.addListener((idleState) => {
  void ready.then(() => engine.setIdle(idleState !== 'active'));
});
void chrome.idle.queryState(60).then((idleState) => ready.then(() => engine.setIdle(idleState !== 'active')));

chrome.alarms.onAlarm.addListener((alarm) => {
  if (alarm.name === 'trickle-keepalive') void ready.then(() => engine.keepAlive());
});
void chrome.alarms.get('trickle-keepalive').then((alarm) => {
  if (!alarm) return chrome.alarms.create('trickle-keepalive', { periodInMinutes: 0.5 });
  return undefined;
});
