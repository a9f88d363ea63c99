// The accrual rule of streaming, for the private path where the extension paces its own spending
// (the service accrues identified streams itself, service/trickle/streaming/accrual.py and
// streams.py). The same rule in both places, held together by tests/vectors/accrual.json, which
// the Python and the JS tests both run: a reader's active streams share the reader's time — while
// k streams are active each accrues its site's rate / k — exactly, with the fraction of a minor
// unit carried, so that one tab or ten never pay more than the rate. No browser APIs here.

export const HOUR_MS = 3_600_000n;
const REDUCE_ABOVE = 2n ** 96n;

/** @param {bigint} a @param {bigint} b */
function gcd(a, b) {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * Money a stream has earned but not yet been paid, as the exact fraction `num / den` of a minor
 * unit (trickle.streaming.accrual.Accrual, in BigInt).
 */
export class Accrual {
  constructor() {
    this.num = 0n;
    this.den = HOUR_MS;
  }

  /**
   * Accrue `elapsedMs` of active time at `rate / share` per hour.
   * @param {bigint} ratePerHourMinor
   * @param {bigint} elapsedMs
   * @param {number} share
   */
  add(ratePerHourMinor, elapsedMs, share) {
    if (elapsedMs <= 0n || ratePerHourMinor <= 0n) return;
    const numerator = ratePerHourMinor * elapsedMs;
    const denominator = HOUR_MS * BigInt(Math.max(share, 1));
    if (denominator === this.den) {
      this.num += numerator;
      return;
    }
    const common = (this.den / gcd(this.den, denominator)) * denominator;
    this.num = this.num * (common / this.den) + numerator * (common / denominator);
    this.den = common;
    if (common > REDUCE_ABOVE) {
      const divisor = gcd(this.num, common);
      this.num /= divisor;
      this.den /= divisor;
    }
  }

  /** The whole minor units accrued so far; the fraction stays for next time. */
  take() {
    const whole = this.num / this.den;
    this.num -= whole * this.den;
    return whole;
  }

  clear() {
    this.num = 0n;
  }
}

/**
 * A private stream's state: the service's names for an identified stream's states (streams.py
 * `desired`), in the same order of precedence. Only `active` accrues.
 * @typedef {'disconnected' | 'account_frozen' | 'paused' | 'site_disabled' | 'insufficient_funds' |
 *   'budget_exhausted' | 'active' | 'inactive'} PacedState
 */

/**
 * The reader's rules that decide what a site is paid (their settings and site rules).
 * @typedef {object} Policy
 * @property {boolean} paused
 * @property {string} rate  minor units per hour
 * @property {Record<string, {rate: string | null, disabled: boolean}>} overrides
 */

/**
 * The hourly rate a site is paid at, or null when the reader turned the site off
 * (trickle.readers.ReaderPolicy.site_rate).
 * @param {Policy} policy
 * @param {string} origin
 * @returns {bigint | null}
 */
export function siteRate(policy, origin) {
  const override = policy.overrides[origin];
  if (override?.disabled) return null;
  return BigInt(override?.rate ?? policy.rate);
}

/**
 * @typedef {object} PacedInput
 * @property {boolean} connected  the private socket is up and its stream started
 * @property {boolean} frozen  the service refused tokens because the reader's spending is on hold
 * @property {'insufficient_funds' | 'budget_exhausted' | null} blocked  the service refused tokens for this
 * @property {Policy} policy
 * @property {string} origin
 * @property {boolean} attentive  shared/attention.js isAttentive
 */

/**
 * What a private stream does now: the first rule that applies, as the service decides for an
 * identified stream.
 * @param {PacedInput} input
 * @returns {PacedState}
 */
export function pacedState(input) {
  if (!input.connected) return 'disconnected';
  if (input.frozen) return 'account_frozen';
  if (input.policy.paused) return 'paused';
  if (siteRate(input.policy, input.origin) === null) return 'site_disabled';
  if (input.blocked) return input.blocked;
  return input.attentive ? 'active' : 'inactive';
}

/**
 * One stream of the pacer: its site, its state, and what it accrued.
 * @typedef {{origin: string, state: PacedState, accrual: Accrual, lastMs: number}} Paced
 */

/**
 * Accrue every active stream up to `nowMs` at the current shares (streams.py `settle`): k active
 * streams each get their site's rate / k for the time since their last settlement.
 * @param {Iterable<Paced>} streams
 * @param {Policy} policy
 * @param {number} nowMs
 */
export function settle(streams, policy, nowMs) {
  const all = [...streams];
  const share = all.filter((s) => s.state === 'active').length;
  for (const stream of all) {
    if (stream.state === 'active') {
      const rate = siteRate(policy, stream.origin) ?? 0n;
      stream.accrual.add(rate, BigInt(Math.max(0, nowMs - stream.lastMs)), share);
    }
    stream.lastMs = nowMs;
  }
}
