/// <reference types="chrome" />
// Helpers for the extension's own pages: one way to ask the background, one reply shape, and one
// way to show an amount (shared/format.js) or a sentence (shared/sentences.js) in the page.

import { exactMoney, formatMoney } from './format.js';
import { sentence } from './sentences.js';

/**
 * Send a UI message to the background; resolve with its value or reject with a UiError.
 * @param {import('./messages.js').UiMessage} message
 * @returns {Promise<any>}
 */
export async function ask(message) {
  /** @type {import('./messages.js').Reply | undefined} */
  let reply;
  try {
    reply = await chrome.runtime.sendMessage(message);
  } catch (error) {
    throw new UiError('extension_unavailable', `The extension's background did not answer: ${String(error)}`);
  }
  if (!reply || typeof reply !== 'object') throw new UiError('extension_unavailable', 'No answer from the background.');
  if (reply.ok) return reply.value;
  throw new UiError(reply.error.code, reply.error.message, reply.error.details ?? null);
}

export class UiError extends Error {
  /**
   * @param {string} code
   * @param {string} message  for developers (the console), never shown to the reader
   * @param {Record<string, unknown> | null} [details]
   */
  constructor(code, message, details = null) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

/**
 * An error with a code for the reader: the background's (UiError) or one of the pure modules'
 * own (an AmountError, a ServiceUrlError).
 * @param {unknown} error
 * @returns {error is Error & {code: string, details?: Record<string, unknown> | null}}
 */
function isCoded(error) {
  return error instanceof Error && typeof (/** @type {any} */ (error).code) === 'string';
}

/** @param {unknown} error */
export function codeOf(error) {
  return isCoded(error) ? error.code : 'internal';
}

/**
 * The reader's sentence for a failure: by its code, with the values it carries and the page's
 * context (what the reader was doing, their money). An error without a code is the extension's
 * own bug: the console gets it, the reader a general sentence.
 * @param {unknown} error
 * @param {import('./sentences.js').Context} [context]
 * @returns {import('./sentences.js').Sentence}
 */
export function explain(error, context = {}) {
  if (!isCoded(error)) console.error('Trickle:', error);
  const details = isCoded(error) ? error.details ?? null : null;
  return sentence(codeOf(error), { ...context, details });
}

/**
 * Show a sentence in `node`, with its way forward as a link: to a part of the options page, or
 * (from the popup) to a part of the popup. `where` is the page showing it.
 * @param {HTMLElement} node
 * @param {import('./sentences.js').Sentence | string} said
 * @param {{code?: string, prefix?: string, where?: 'popup' | 'options' | 'approve'}} [options]
 */
export function showSentence(node, said, options = {}) {
  const { text, next } = typeof said === 'string' ? { text: said, next: null } : said;
  const where = options.where ?? 'popup';
  node.dataset.code = options.code ?? '';
  const shown = options.prefix ? `${options.prefix} ${text}` : text;
  // Unchanged: left alone, so that a link keeps the keyboard focus while the page refreshes.
  const key = `${shown}|${next?.label ?? ''}`;
  if (node.dataset.said === key) return;
  node.dataset.said = key;
  node.replaceChildren(shown);
  if (!next) return;
  /** @type {string | null} */
  let href = null;
  if (next.page === 'options') href = where === 'options' ? `#${next.anchor}` : `options.html#${next.anchor}`;
  else if (where === 'popup') href = `#${next.anchor}`;
  if (href === null) return;
  const link = document.createElement('a');
  link.href = href;
  link.className = 'next';
  link.textContent = next.label;
  if (href.startsWith('options.html')) link.target = '_blank';
  else {
    link.addEventListener('click', (event) => {
      event.preventDefault();
      focusSection(next.anchor);
    });
  }
  node.append(' ', link);
}

/** Bring a section of this page into view and put the focus on its first field. @param {string} id */
function focusSection(id) {
  const section = document.getElementById(id);
  section?.scrollIntoView({ block: 'nearest' });
  const field = section?.querySelector('input, button, select, textarea');
  if (field instanceof HTMLElement) field.focus();
}

/**
 * Show an amount for people in `node`, its exact value as the title and its minor units as
 * `data-minor` (what tests and scripts read).
 * @param {HTMLElement} node
 * @param {string | null | undefined} minor
 * @param {import('./format.js').Asset | null | undefined} asset
 */
export function showMoney(node, minor, asset) {
  node.dataset.minor = minor ?? '';
  if (minor == null || !asset) {
    node.textContent = '—';
    node.removeAttribute('title');
    return;
  }
  node.textContent = formatMoney(minor, asset);
  node.title = exactMoney(minor, asset);
}

/**
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new (...args: any[]) => T} type
 * @returns {T}
 */
export function byId(id, type) {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} missing`);
  return el;
}
