/**
 * Test-only manual time for the bridge suites in ../test: timers run only when a test advances the
 * clock, and `settle` lets pending promise chains run to the end. Not part of the SDK's public API.
 */

/** Let promise chains (fetch → json → bookkeeping) run to the end. */
export async function settle() {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A manual clock: timers run only when the test advances time. */
export class FakeClock {
  now = 0;
  #nextId = 1;
  /** @type {Map<number, {at: number, callback: () => void}>} */
  timers = new Map();

  /**
   * @param {() => void} callback
   * @param {number} ms
   */
  setTimeout(callback, ms) {
    const id = this.#nextId++;
    this.timers.set(id, { at: this.now + ms, callback });
    return id;
  }

  /** @param {unknown} id */
  clearTimeout(id) {
    this.timers.delete(/** @type {number} */ (id));
  }

  /**
   * Run, in time order, every timer due within `ms`, settling promise chains after each.
   * @param {number} ms
   */
  async advance(ms) {
    const end = this.now + ms;
    await settle();
    for (;;) {
      const due = [...this.timers].filter(([, timer]) => timer.at <= end).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
      await settle();
    }
    this.now = end;
    await settle();
  }
}
