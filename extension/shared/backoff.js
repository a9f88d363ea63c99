// Reconnect delays: exponential backoff with "equal jitter".

/**
 * @typedef {object} BackoffOptions
 * @property {number} [baseMs] the first delay's ceiling (default 500 ms)
 * @property {number} [maxMs] the cap (default 10 s: well inside the service's 30 s resume grace)
 * @property {() => number} [random] a source of numbers in [0, 1) (default Math.random)
 */

/**
 * The delay before reconnect attempt `attempt` (0 for the first retry): the ceiling
 * `min(maxMs, baseMs * 2^attempt)`, of which the first half is fixed and the second half random,
 * so that many browsers dropped together do not come back together, yet no retry is immediate.
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @returns {number} milliseconds, an integer in [ceiling/2, ceiling]
 */
export function backoffDelay(attempt, options = {}) {
  const baseMs = options.baseMs ?? 500;
  const maxMs = options.maxMs ?? 10_000;
  const random = options.random ?? Math.random;
  if (!Number.isInteger(attempt) || attempt < 0) throw new RangeError('attempt must be an integer >= 0');
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 40));
  const r = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + (r * ceiling) / 2);
}
