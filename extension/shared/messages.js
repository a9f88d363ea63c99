// The runtime messages between the extension's parts: one map per direction, one validator per
// map, one reply shape. Everything that arrives is validated field by field (unknown fields are
// refused) and its sender checked before the background acts on it.
//
//   content script → background : PageMessage   (sender: this extension, with sender.tab)
//   extension page → background : UiMessage     (sender: this extension, from an extension URL)
//   background → content script : trickle/receipt, trickle/payment-result (checked in content.js)

import { parsePaymentRequest } from './payments.js';

/**
 * @typedef {{ok: true, value: any}} OkReply
 * @typedef {{ok: false, error: {code: string, message: string, details?: Record<string, unknown>}}} ErrorReply
 * @typedef {OkReply | ErrorReply} Reply
 */

/** @typedef {{id: string, href: string, binding: string | null}} PageLink */
/**
 * @typedef {{type: 'page/update', page: string, links: PageLink[], visible: boolean, focused: boolean,
 *   frozen: boolean}} PageUpdate
 * @typedef {{type: 'page/leave', page: string}} PageLeave
 * @typedef {{type: 'page/payment', page: string, request: import('./payments.js').PaymentRequest}} PagePayment
 * @typedef {PageUpdate | PageLeave | PagePayment} PageMessage
 */
/**
 * @typedef {{type: 'ui/state', tabId: number | null}} UiState
 * @typedef {{type: 'ui/sign-in', email: string, password: string}} UiSignIn
 * @typedef {{type: 'ui/sign-up', email: string, password: string}} UiSignUp
 * @typedef {{type: 'ui/sign-out'}} UiSignOut
 * @typedef {{type: 'ui/redeem', code: string}} UiRedeem
 * @typedef {{type: 'ui/pause', paused: boolean}} UiPause
 * @typedef {{type: 'ui/site', tabId: number, enabled: boolean, rate: string | null}} UiSite
 * @typedef {{type: 'ui/options'}} UiOptions
 * @typedef {{type: 'ui/service-url', url: string}} UiServiceUrl
 * @typedef {{type: 'ui/limits', rate: string, budget: string}} UiLimits
 * @typedef {{type: 'ui/payment-get', request: string}} UiPaymentGet
 * @typedef {{type: 'ui/payment-decide', request: string, approve: boolean}} UiPaymentDecide
 * @typedef {{type: 'ui/tip', tabId: number, amount: string}} UiTip
 * @typedef {{type: 'ui/auto-approve', tabId: number, limit: string}} UiAutoApprove
 * @typedef {{type: 'ui/auto-approve-clear', origin: string}} UiAutoApproveClear
 * @typedef {{type: 'ui/daily-cap', cap: string}} UiDailyCap
 * @typedef {{type: 'ui/topup-options'}} UiTopupOptions
 * @typedef {{type: 'ui/topup', amountMinor: string}} UiTopup
 * @typedef {{type: 'ui/topup-status'}} UiTopupStatus
 * @typedef {{type: 'ui/private-payments', enabled: boolean}} UiPrivatePayments
 * @typedef {{type: 'ui/token-reserve', reserve: string}} UiTokenReserve
 * @typedef {UiState | UiSignIn | UiSignUp | UiSignOut | UiRedeem | UiPause | UiSite | UiOptions |
 *   UiServiceUrl | UiLimits | UiPaymentGet | UiPaymentDecide | UiTip | UiAutoApprove | UiAutoApproveClear |
 *   UiDailyCap | UiTopupOptions | UiTopup | UiTopupStatus | UiPrivatePayments | UiTokenReserve} UiMessage
 */

export class MessageError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'MessageError';
    this.code = 'invalid_message';
  }
}

/**
 * @param {any} value
 * @returns {OkReply}
 */
export function ok(value) {
  return { ok: true, value };
}

/**
 * @param {string} code
 * @param {string} message  for developers; pages show shared/sentences.js's sentence for the code
 * @param {Record<string, unknown> | null} [details]  the values that sentence needs (a limit, a reason)
 * @returns {ErrorReply}
 */
export function fail(code, message, details = null) {
  return details ? { ok: false, error: { code, message, details } } : { ok: false, error: { code, message } };
}

/** @param {unknown} value @returns {value is Record<string, unknown>} */
function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * @param {Record<string, unknown>} raw
 * @param {readonly string[]} fields
 */
function exactFields(raw, fields) {
  for (const key of Object.keys(raw)) {
    if (!fields.includes(key)) throw new MessageError(`unknown field ${JSON.stringify(key.slice(0, 40))}`);
  }
  for (const key of fields) {
    if (!(key in raw)) throw new MessageError(`missing field ${key}`);
  }
}

/**
 * @param {unknown} value
 * @param {string} name
 * @param {number} max
 * @param {RegExp} [pattern]
 * @returns {string}
 */
function str(value, name, max, pattern) {
  if (typeof value !== 'string') throw new MessageError(`${name} must be a string`);
  if (value.length > max) throw new MessageError(`${name} is longer than ${max}`);
  if (pattern && !pattern.test(value)) throw new MessageError(`${name} has the wrong form`);
  return value;
}

/** @param {unknown} value @param {string} name @returns {boolean} */
function bool(value, name) {
  if (typeof value !== 'boolean') throw new MessageError(`${name} must be a boolean`);
  return value;
}

/** @param {unknown} value @param {string} name @returns {number} */
function tabId(value, name) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new MessageError(`${name} must be a tab id`);
  }
  return value;
}

const PAGE_ID = /^[A-Za-z0-9-]{8,64}$/;
/** The extension's own key of a pending payment (the approval window's `?request=`). */
export const PENDING_ID = /^[A-Za-z0-9-]{8,64}$/;
const LINK_ID = /^[A-Za-z0-9]{1,16}$/;
const MINOR_AMOUNT = /^(0|[1-9][0-9]*)$/;
/** The most links of one page the background looks at. */
export const MAX_LINKS = 50;

/**
 * Validate a message from a content script.
 * @param {unknown} raw
 * @returns {PageMessage}
 */
export function parsePageMessage(raw) {
  if (!isObject(raw) || typeof raw.type !== 'string') throw new MessageError('a message must be an object with a type');
  switch (raw.type) {
    case 'page/update': {
      exactFields(raw, ['type', 'page', 'links', 'visible', 'focused', 'frozen']);
      if (!Array.isArray(raw.links)) throw new MessageError('links must be an array');
      if (raw.links.length > MAX_LINKS) throw new MessageError(`at most ${MAX_LINKS} links`);
      const links = raw.links.map((link, i) => {
        if (!isObject(link)) throw new MessageError(`links[${i}] must be an object`);
        exactFields(link, ['id', 'href', 'binding']);
        const binding = link.binding === null ? null : str(link.binding, `links[${i}].binding`, 4096);
        return { id: str(link.id, `links[${i}].id`, 16, LINK_ID), href: str(link.href, `links[${i}].href`, 4096), binding };
      });
      return {
        type: 'page/update',
        page: str(raw.page, 'page', 64, PAGE_ID),
        links,
        visible: bool(raw.visible, 'visible'),
        focused: bool(raw.focused, 'focused'),
        frozen: bool(raw.frozen, 'frozen'),
      };
    }
    case 'page/leave':
      exactFields(raw, ['type', 'page']);
      return { type: 'page/leave', page: str(raw.page, 'page', 64, PAGE_ID) };
    case 'page/payment': {
      exactFields(raw, ['type', 'page', 'request']);
      /** @type {import('./payments.js').PaymentRequest} */
      let request;
      try {
        request = parsePaymentRequest(raw.request);
      } catch (error) {
        throw new MessageError(`request: ${error instanceof Error ? error.message : String(error)}`);
      }
      return { type: 'page/payment', page: str(raw.page, 'page', 64, PAGE_ID), request };
    }
    default:
      throw new MessageError(`unknown message type ${JSON.stringify(raw.type.slice(0, 40))}`);
  }
}

/**
 * Validate a message from an extension page (popup, options).
 * @param {unknown} raw
 * @returns {UiMessage}
 */
export function parseUiMessage(raw) {
  if (!isObject(raw) || typeof raw.type !== 'string') throw new MessageError('a message must be an object with a type');
  switch (raw.type) {
    case 'ui/state':
      exactFields(raw, ['type', 'tabId']);
      return { type: 'ui/state', tabId: raw.tabId === null ? null : tabId(raw.tabId, 'tabId') };
    case 'ui/sign-in':
    case 'ui/sign-up':
      exactFields(raw, ['type', 'email', 'password']);
      return { type: raw.type, email: str(raw.email, 'email', 320), password: str(raw.password, 'password', 1000) };
    case 'ui/sign-out':
      exactFields(raw, ['type']);
      return { type: 'ui/sign-out' };
    case 'ui/redeem':
      exactFields(raw, ['type', 'code']);
      return { type: 'ui/redeem', code: str(raw.code, 'code', 200) };
    case 'ui/pause':
      exactFields(raw, ['type', 'paused']);
      return { type: 'ui/pause', paused: bool(raw.paused, 'paused') };
    case 'ui/site':
      exactFields(raw, ['type', 'tabId', 'enabled', 'rate']);
      return {
        type: 'ui/site',
        tabId: tabId(raw.tabId, 'tabId'),
        enabled: bool(raw.enabled, 'enabled'),
        rate: raw.rate === null ? null : str(raw.rate, 'rate', 40),
      };
    case 'ui/options':
      exactFields(raw, ['type']);
      return { type: 'ui/options' };
    case 'ui/service-url':
      exactFields(raw, ['type', 'url']);
      return { type: 'ui/service-url', url: str(raw.url, 'url', 2000) };
    case 'ui/limits':
      exactFields(raw, ['type', 'rate', 'budget']);
      return { type: 'ui/limits', rate: str(raw.rate, 'rate', 40), budget: str(raw.budget, 'budget', 40) };
    case 'ui/payment-get':
      exactFields(raw, ['type', 'request']);
      return { type: 'ui/payment-get', request: str(raw.request, 'request', 64, PENDING_ID) };
    case 'ui/payment-decide':
      exactFields(raw, ['type', 'request', 'approve']);
      return { type: 'ui/payment-decide', request: str(raw.request, 'request', 64, PENDING_ID), approve: bool(raw.approve, 'approve') };
    case 'ui/tip':
      exactFields(raw, ['type', 'tabId', 'amount']);
      return { type: 'ui/tip', tabId: tabId(raw.tabId, 'tabId'), amount: str(raw.amount, 'amount', 40) };
    case 'ui/auto-approve':
      exactFields(raw, ['type', 'tabId', 'limit']);
      return { type: 'ui/auto-approve', tabId: tabId(raw.tabId, 'tabId'), limit: str(raw.limit, 'limit', 40) };
    case 'ui/auto-approve-clear':
      exactFields(raw, ['type', 'origin']);
      return { type: 'ui/auto-approve-clear', origin: str(raw.origin, 'origin', 300) };
    case 'ui/daily-cap':
      exactFields(raw, ['type', 'cap']);
      return { type: 'ui/daily-cap', cap: str(raw.cap, 'cap', 40) };
    case 'ui/topup-options':
      exactFields(raw, ['type']);
      return { type: 'ui/topup-options' };
    case 'ui/topup-status':
      exactFields(raw, ['type']);
      return { type: 'ui/topup-status' };
    case 'ui/private-payments':
      exactFields(raw, ['type', 'enabled']);
      return { type: 'ui/private-payments', enabled: bool(raw.enabled, 'enabled') };
    case 'ui/token-reserve':
      exactFields(raw, ['type', 'reserve']);
      return { type: 'ui/token-reserve', reserve: str(raw.reserve, 'reserve', 12) };
    case 'ui/topup':
      exactFields(raw, ['type', 'amountMinor']);
      return { type: 'ui/topup', amountMinor: str(raw.amountMinor, 'amountMinor', 19, MINOR_AMOUNT) };
    default:
      throw new MessageError(`unknown message type ${JSON.stringify(raw.type.slice(0, 40))}`);
  }
}

/**
 * @typedef {object} SenderLike  the parts of chrome.runtime.MessageSender the checks read
 * @property {string} [id]
 * @property {string} [url]
 * @property {string} [origin]
 * @property {{id?: number}} [tab]
 * @property {number} [frameId]
 */

/**
 * Whether a message comes from this extension's own pages (popup, options): our id, and a URL
 * inside the extension. (A popup opened as a tab has sender.tab too; its URL still tells.)
 * @param {SenderLike} sender
 * @param {string} extensionId  chrome.runtime.id
 * @param {string} extensionBase  chrome.runtime.getURL('') — "chrome-extension://ID/"
 */
export function isFromExtensionPage(sender, extensionId, extensionBase) {
  return sender.id === extensionId && typeof sender.url === 'string' && sender.url.startsWith(extensionBase);
}

/**
 * Whether a message comes from this extension's content script in a web page tab: our id,
 * a tab with an id, a frame id, and a page URL that is not an extension URL.
 * @param {SenderLike} sender
 * @param {string} extensionId
 * @param {string} extensionBase
 */
export function isFromContentScript(sender, extensionId, extensionBase) {
  return (
    sender.id === extensionId &&
    sender.tab !== undefined &&
    typeof sender.tab.id === 'number' &&
    sender.tab.id >= 0 &&
    typeof sender.frameId === 'number' &&
    typeof sender.url === 'string' &&
    !sender.url.startsWith(extensionBase)
  );
}
