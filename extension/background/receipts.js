/// <reference types="chrome" />
// A receipt, identified or private, counted and delivered: the increase goes into the site's
// history and the visit's total, and the `monetization` event to exactly the document that
// started the stream (tabs.sendMessage to its tab, frame and document). One home for both paths.

import { addMinor, minorToDecimal } from '../shared/amounts.js';
import { addToHistory, state } from './state.js';

/**
 * What a receipt was paid on: the stream's document, site, paid link and pointer.
 * @typedef {{docKey: string, page: string, origin: string, linkId: string, pointer: string}} Paid
 */

/**
 * Count and deliver one receipt whose `tot` went up by `delta`.
 * @param {Paid} paid
 * @param {{amt: string, receipt: string}} message
 * @param {bigint} delta
 * @param {{currency: string, scale: number} | null} asset
 * @param {boolean} privately  paid with tokens
 */
export function deliverReceipt(paid, message, delta, asset, privately) {
  if (delta > 0n) addToHistory(paid.origin, delta, false, privately);
  const doc = state.docs[paid.docKey];
  if (!doc || doc.page !== paid.page) return; // its document is gone: nobody to deliver to
  if (delta > 0n) doc.sent = addMinor(doc.sent, delta);
  if (!asset) return;
  const event = {
    amountSent: { currency: asset.currency, value: minorToDecimal(message.amt, asset.scale) },
    paymentPointer: paid.pointer,
    incomingPayment: null,
    receipt: message.receipt,
    amountMinor: message.amt,
    scale: asset.scale,
  };
  /** @type {{frameId: number, documentId?: string}} */
  const target = { frameId: doc.frameId };
  if (doc.documentId) target.documentId = doc.documentId;
  chrome.tabs
    .sendMessage(doc.tabId, { type: 'trickle/receipt', page: doc.page, link: paid.linkId, event }, target)
    .catch(() => {
      // the document went away; its pagehide or the tab's removal cleans up
    });
}
