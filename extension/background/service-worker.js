/// <reference types="chrome" />
// The background service worker: registers every listener synchronously (so a restarted worker
// gets the event that woke it), checks who sent each message, validates it, and hands it to the
// engine. One dispatcher, one reply shape: {ok: true, value} / {ok: false, error: {code, message}}.

import { AmountError } from '../shared/amounts.js';
import { serviceUrls } from '../shared/links.js';
import { MessageError, fail, isFromContentScript, isFromExtensionPage, ok, parsePageMessage, parseUiMessage } from '../shared/messages.js';
import { ApiError } from './api.js';
import * as engine from './engine.js';

const EXTENSION_BASE = chrome.runtime.getURL('');
const ready = engine.load().catch((error) => {
  console.error('Trickle: could not load its state', error);
});

/**
 * @param {import('../shared/messages.js').UiMessage} message
 * @returns {Promise<unknown>}
 */
async function uiDispatch(message) {
  switch (message.type) {
    case 'ui/state':
      return engine.popupState(message.tabId);
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
      return engine.optionsState();
    case 'ui/service-url': {
      const base = serviceUrls(message.url).base;
      await chrome.storage.local.set({ serviceUrl: base }); // storage.onChanged reconnects
      engine.serviceUrlChanged(base);
      return { serviceUrl: base };
    }
    case 'ui/limits':
      return engine.setLimits(message.rate, message.budget);
  }
}

/** @param {unknown} error */
function toReply(error) {
  if (error instanceof ApiError || error instanceof MessageError || error instanceof AmountError) {
    return fail(error.code, error.message);
  }
  if (error instanceof TypeError) return fail('invalid_input', error.message);
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
      engine.pageMessage(parsePageMessage(raw), sender);
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
});

chrome.tabs.onRemoved.addListener((tabId) => {
  void ready.then(() => engine.removeTab(tabId));
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
