// Money for people: the one way the extension writes an amount for a reader to read, in the
// popup, the options page, the approval window and the top-up status. The rule (shared with the
// dashboard and the demo publisher through tests/vectors/amount-format.json):
//
//   - a currency symbol or code, placed, spaced and grouped as the reader's locale does it
//     (`Intl.NumberFormat`, style "currency"); an asset code that is not an ISO 4217 code is
//     written before the number, like an ISO code without a symbol;
//   - the currency's usual decimals (2 for USD, 0 for JPY), more only when the amount has them,
//     trailing zeros trimmed beyond the usual ones; never rounded;
//   - the exact value, every one of the scale's digits, in `exactMoney` (for a title/tooltip).
//
// The value never passes through a float: the whole part is a BigInt and the fraction digits are
// the exact decimal string's; Intl only supplies the symbol, grouping and separators.

import { minorToDecimal } from './amounts.js';

const ISO_CURRENCY = /^[A-Z]{3}$/;
const SIGNED_MINOR = /^(-?)(0|[1-9][0-9]*)$/;
const NBSP = '\u00a0';

/** @typedef {{currency: string, scale: number}} Asset */

/** @type {Map<string, {digits: number, format: Intl.NumberFormat}>} */
const cache = new Map();

/**
 * The locale's formatter for `currency` (one fraction digit: the digits are replaced by the
 * exact ones) and the currency's usual number of decimals; null for a code Intl does not take.
 * @param {string | undefined} locale
 * @param {string} currency
 */
function currencyFormat(locale, currency) {
  const key = `${locale ?? ''}|${currency}`;
  let found = cache.get(key);
  if (!found) {
    const usual = new Intl.NumberFormat(locale, { style: 'currency', currency });
    found = {
      digits: usual.resolvedOptions().maximumFractionDigits ?? 2,
      format: new Intl.NumberFormat(locale, {
        style: 'currency',
        currency,
        minimumFractionDigits: 1,
        maximumFractionDigits: 1,
      }),
    };
    cache.set(key, found);
  }
  return found;
}

/**
 * The locale's plain number formatter (for asset codes that are not ISO currencies).
 * @param {string | undefined} locale
 */
function plainFormat(locale) {
  const key = `${locale ?? ''}|`;
  let found = cache.get(key);
  if (!found) {
    found = { digits: 2, format: new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) };
    cache.set(key, found);
  }
  return found;
}

/**
 * @param {string | bigint} minor
 * @returns {{negative: boolean, digits: string}}
 */
function split(minor) {
  const text = typeof minor === 'bigint' ? minor.toString() : String(minor);
  const match = SIGNED_MINOR.exec(text);
  if (!match) throw new TypeError(`not a minor-unit amount: ${JSON.stringify(text.slice(0, 40))}`);
  return { negative: match[1] === '-' && match[2] !== '0', digits: match[2] };
}

/**
 * An amount for people: `("4001000", {currency: "USD", scale: 9})` → "$0.004001";
 * `("5000000000", …)` → "$5.00"; in the reader's locale unless `locale` is given.
 * @param {string | bigint} minor  integer minor units (a decimal string or a BigInt; may be negative)
 * @param {Asset} asset
 * @param {string} [locale]  a BCP 47 tag; the browser's locale when omitted
 * @returns {string}
 */
export function formatMoney(minor, asset, locale) {
  const { negative, digits } = split(minor);
  const exact = minorToDecimal(digits, asset.scale);
  const [whole, fraction = ''] = exact.split('.');
  const iso = ISO_CURRENCY.test(asset.currency);
  /** @type {{digits: number, format: Intl.NumberFormat} | null} */
  let found = null;
  if (iso) {
    try {
      found = currencyFormat(locale, asset.currency);
    } catch {
      found = null; // a code this browser's Intl refuses: written like a non-ISO code
    }
  }
  const { digits: usual, format } = found ?? plainFormat(locale);
  let shown = fraction.replace(/0+$/, '');
  if (shown.length < usual) shown = shown.padEnd(usual, '0');
  const wholeValue = BigInt(whole);
  /** @type {number | bigint} */
  const value = negative ? (wholeValue === 0n ? -0 : -wholeValue) : wholeValue;
  const parts = /** @type {Intl.NumberFormatPart[]} */ (format.formatToParts(/** @type {any} */ (value)));
  let text = '';
  for (const part of parts) {
    if (part.type === 'fraction') text += shown;
    else if (part.type === 'decimal') text += shown === '' ? '' : part.value;
    else text += part.value;
  }
  if (found) return text;
  // Not a currency Intl knows: the code first, as Intl writes an ISO code without a symbol.
  const sign = negative ? text.match(/^[^0-9]*/)?.[0] ?? '' : '';
  return `${sign}${asset.currency}${NBSP}${text.slice(sign.length)}`;
}

/**
 * The exact value with every digit of the scale and the asset code, for a title or tooltip:
 * ("4001000", USD at scale 9) → "0.004001000 USD".
 * @param {string | bigint} minor
 * @param {Asset} asset
 * @returns {string}
 */
export function exactMoney(minor, asset) {
  const { negative, digits } = split(minor);
  return `${negative ? '-' : ''}${minorToDecimal(digits, asset.scale)} ${asset.currency}`;
}
