// When a page streams. Pure functions of the facts the background holds: the reader's account
// and settings, the connection, and the page's own attention (reported by its content script)
// plus the system idle state. What the reader reads about it is in sentences.js.

/**
 * @typedef {object} PageAttention
 * @property {boolean} visible  document.visibilityState === 'visible'
 * @property {boolean} focused  document.hasFocus()
 * @property {boolean} frozen  the page is in the back/forward cache (pagehide persisted)
 */

/**
 * @typedef {object} StatusInput
 * @property {boolean} signedIn
 * @property {boolean} monetized  the page has a link it pays
 * @property {boolean} connected  the stream socket is open and welcomed
 * @property {boolean} globalPaused
 * @property {boolean} siteDisabled
 * @property {boolean} idle  chrome.idle says idle or locked
 * @property {PageAttention} page
 * @property {string | null} serverState  the stream's last `state` from the service, null before one
 * @property {string | null} [error]  a stream error code the service gave for this page (e.g. payee_not_found)
 */

/**
 * @typedef {'streaming' | 'paused' | 'not-monetized' | 'signed-out' | 'error'} TabState
 * @typedef {'' | 'hidden' | 'idle' | 'global-pause' | 'site-disabled' | 'insufficient_funds' |
 *   'budget_exhausted' | 'account_frozen' | 'service_unreachable' | 'signed_out'} TabReason
 * @typedef {{state: TabState, reason: TabReason}} Status
 */

/**
 * Whether the page has the reader's attention: what the extension reports to the service as
 * `active`. Visible, focused, not in the back/forward cache, and the reader not idle or locked.
 * @param {PageAttention} page
 * @param {boolean} idle
 */
export function isAttentive(page, idle) {
  return page.visible && page.focused && !page.frozen && !idle;
}

/**
 * The page's status, the first rule that applies winning:
 * signed out → not monetized → global pause → site off → service unreachable →
 * insufficient funds / budget reached → not visible or focused (hidden) → idle → the service's
 * own state (paused / site_disabled set elsewhere, inactive) → streaming once the service says
 * `active`.
 * @param {StatusInput} input
 * @returns {Status}
 */
export function pageStatus(input) {
  if (!input.signedIn) return { state: 'signed-out', reason: 'signed_out' };
  if (!input.monetized) return { state: 'not-monetized', reason: '' };
  if (input.globalPaused) return { state: 'paused', reason: 'global-pause' };
  if (input.siteDisabled) return { state: 'paused', reason: 'site-disabled' };
  if (!input.connected) return { state: 'error', reason: 'service_unreachable' };
  if (input.serverState === 'insufficient_funds' || input.serverState === 'budget_exhausted' || input.serverState === 'account_frozen') {
    return { state: 'error', reason: input.serverState };
  }
  if (input.error) return { state: 'error', reason: '' };
  const page = input.page;
  if (!page.visible || !page.focused || page.frozen) return { state: 'paused', reason: 'hidden' };
  if (input.idle) return { state: 'paused', reason: 'idle' };
  switch (input.serverState) {
    case 'active':
      return { state: 'streaming', reason: '' };
    case 'paused':
      return { state: 'paused', reason: 'global-pause' };
    case 'site_disabled':
      return { state: 'paused', reason: 'site-disabled' };
    case 'inactive':
      return { state: 'paused', reason: 'hidden' };
    default:
      return { state: 'paused', reason: '' };
  }
}
