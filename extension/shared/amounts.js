// Money in the extension: integer minor units as decimal strings (or BigInt), never floats.
// The service states every amount with its `currency` and `scale` (1 minor unit = 10^-scale).

const MINOR = /^(0|[1-9][0-9]*)$/;
const MAJOR = /^([0-9]*)(?:\.([0-9]*))?$/;
/** The largest amount the service accepts (below 2^63). */
export const MAX_MINOR = 2n ** 63n - 1n;

/**
 * Why an amount was refused, for the reader's sentence (shared/sentences.js).
 * @typedef {'empty' | 'malformed' | 'too_many_decimals' | 'zero' | 'too_large' | 'scale'} AmountReason
 */

export class AmountError extends Error {
  /**
   * @param {string} message  for developers
   * @param {AmountReason} [reason]
   * @param {number} [scale]
   */
  constructor(message, reason = 'malformed', scale) {
    super(message);
    this.name = 'AmountError';
    this.code = 'invalid_amount';
    /** @type {{reason: AmountReason, scale?: number}} */
    this.details = scale === undefined ? { reason } : { reason, scale };
  }
}

/** @param {number} scale */
function checkScale(scale) {
  if (!Number.isInteger(scale) || scale < 0 || scale > 18) {
    throw new AmountError(`scale must be an integer 0..18, got ${scale}`, 'scale');
  }
}

/**
 * Whether `text` is a minor-unit amount string as the service writes them.
 * @param {unknown} text
 * @returns {text is string}
 */
export function isMinor(text) {
  return typeof text === 'string' && text.length <= 19 && MINOR.test(text) && BigInt(text) <= MAX_MINOR;
}

/**
 * Minor units → the exact decimal string in major units, with exactly `scale` fraction digits:
 * ("2000", 9) → "0.000002000". No floating point anywhere.
 * @param {string | bigint} minor
 * @param {number} scale
 * @returns {string}
 */
export function minorToDecimal(minor, scale) {
  checkScale(scale);
  const text = typeof minor === 'bigint' ? minor.toString() : minor;
  if (!MINOR.test(text)) throw new AmountError(`not a minor-unit amount: ${JSON.stringify(text)}`);
  if (scale === 0) return text;
  const padded = text.padStart(scale + 1, '0');
  return `${padded.slice(0, -scale)}.${padded.slice(-scale)}`;
}

/**
 * For people: the decimal string with trailing zeros trimmed down to `minFraction` digits
 * ("4990000000", 9) → "4.99"; ("4999998000", 9) → "4.999998". Never rounds.
 * @param {string | bigint} minor
 * @param {number} scale
 * @param {number} [minFraction]
 * @returns {string}
 */
export function formatMinor(minor, scale, minFraction = 2) {
  const exact = minorToDecimal(minor, scale);
  if (scale === 0) return exact;
  const [whole, fraction] = exact.split('.');
  let kept = fraction.replace(/0+$/, '');
  const want = Math.min(minFraction, scale);
  if (kept.length < want) kept = kept.padEnd(want, '0');
  return kept ? `${whole}.${kept}` : whole;
}

/**
 * A user-typed amount in major units ("0.60", "1", ".5") → minor units as a decimal string,
 * by string arithmetic: ("0.60", 9) → "600000000". Refuses signs, exponents, more fraction
 * digits than the scale has, and amounts of 2^63 minor units or more.
 * @param {string} text
 * @param {number} scale
 * @returns {string}
 */
export function majorToMinor(text, scale) {
  checkScale(scale);
  const trimmed = String(text).trim();
  const match = MAJOR.exec(trimmed);
  if (!match || trimmed === '' || trimmed === '.') {
    throw new AmountError(`not an amount: ${JSON.stringify(trimmed)} (write it like 0.60)`, trimmed === '' ? 'empty' : 'malformed');
  }
  const whole = match[1] || '0';
  const fraction = match[2] || '';
  if (fraction.length > scale) {
    throw new AmountError(`at most ${scale} digits after the point`, 'too_many_decimals', scale);
  }
  const value = BigInt(whole) * 10n ** BigInt(scale) + BigInt(fraction.padEnd(scale, '0') || '0');
  if (value > MAX_MINOR) throw new AmountError('amount too large', 'too_large');
  return value.toString();
}

/**
 * Sum of minor-unit strings.
 * @param {...(string | bigint)} amounts
 * @returns {string}
 */
export function addMinor(...amounts) {
  let total = 0n;
  for (const amount of amounts) total += typeof amount === 'bigint' ? amount : BigInt(amount);
  return total.toString();
}
