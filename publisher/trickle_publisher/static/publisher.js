// The demo publisher's page script: the page bridge set up exactly as sdk_js_bridge/README.md
// tells site owners, plus the paywall and the "Buy" button of the article sold for a one-time
// payment. The server decides what unlocks: this script only shows what the server reports (the
// verified total, the recorded purchase) and asks it for the body.
import { createBridge } from '/sdk/bridge.js';

const data = document.body.dataset;
const currency = data.currency ?? 'USD';
const priceMinor = BigInt(data.priceMinor ?? '0');

/** @type {Record<string, string>} */
const STATUS = {
  unsupported: 'Web Monetization is not available in this browser. Install Trickle (or another Web '
    + 'Monetization extension) to support the writers and unlock premium articles.',
  pending: 'Trickle is here: waiting for the first payment…',
  streaming: 'Streaming: your visit is paying the writer while you read.',
  stopped: 'Payments are paused (tab hidden, paused in Trickle, or budget reached).',
};

const bridge = createBridge({
  endpoint: data.receiptsEndpoint,
  binding: data.binding || null,
  batchDelayMs: 1000,
  persist: true,
});

/** @param {string} state */
function showState(state) {
  const status = document.getElementById('bridge-status');
  if (status === null) return;
  status.dataset.state = state;
  status.textContent = STATUS[state] ?? state;
  const hint = document.getElementById('paywall-hint');
  if (hint !== null && state !== 'unsupported') {
    hint.textContent = `This article unlocks once your visit has paid ${data.priceText ?? ''}.`;
  }
}

/**
 * What this visit has paid, as the server wrote it (amounts are formatted in one place, the
 * server: the page never formats money itself).
 * @param {{total: string, text: string, exact: string}} amount
 */
function showPaid(amount) {
  const paid = BigInt(amount.total);
  const output = document.getElementById('paid');
  if (output !== null) {
    output.dataset.minor = amount.total;
    output.textContent = amount.text;
    output.title = amount.exact;
  }
  const progress = /** @type {HTMLProgressElement | null} */ (document.getElementById('paid-progress'));
  if (progress !== null) progress.value = Number(paid < priceMinor ? paid : priceMinor);
  const badge = document.getElementById('supporter-badge');
  if (badge !== null && paid > 0n) badge.hidden = false;
}

let asking = false;

/** Ask the server whether this visit may read the article now, and show the body if so. */
async function checkAccess() {
  const url = data.accessUrl;
  const body = document.getElementById('article-body');
  if (!url || asking || body === null || body.dataset.state === 'unlocked') return false;
  asking = true;
  try {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return;
    const access = await response.json();
    showPaid(access.paid);
    if (access.unlocked === true && typeof access.html === 'string') {
      body.innerHTML = access.html; // rendered (and escaped) by our own server
      body.dataset.state = 'unlocked';
      body.hidden = false;
      for (const id of ['paywall', 'purchase']) {
        const gate = document.getElementById(id);
        if (gate !== null) {
          gate.dataset.state = 'unlocked';
          gate.hidden = true;
        }
      }
      return true;
    }
  } catch {
    // offline or the server is restarting: the next forwarded batch asks again
  } finally {
    asking = false;
  }
  return false;
}

/** What the reader is told when a purchase fails, by the bridge's error code. */
/** @type {Record<string, string>} */
const PURCHASE_FAILED = {
  no_extension: 'Buying needs the Trickle extension, and it is not in this browser. Install '
    + 'Trickle and sign in, then press Buy again. Nothing was charged.',
  declined: 'You declined the payment in Trickle. Nothing was charged.',
  insufficient_funds: 'Your Trickle balance is too low for this purchase. Nothing was charged.',
  budget_exhausted: 'This purchase would pass your monthly Trickle budget. Nothing was charged.',
  site_disabled: 'You turned off payments to this site in Trickle. Nothing was charged.',
  signed_out: 'Sign in to the Trickle extension, then press Buy again.',
  timeout: 'No answer from Trickle in time; the article stays locked. Press Buy to try again.',
  busy: 'Trickle is already asking you about another payment from this page.',
  service_unreachable: 'The Trickle service could not be reached. Nothing was charged.',
  payee_not_found: "Trickle does not know this site's payee. Nothing was charged.",
  invalid_request: 'Trickle refused the payment request as invalid. Nothing was charged.',
};

/**
 * @param {string} state
 * @param {string} message
 */
function showPurchase(state, message) {
  const status = document.getElementById('purchase-status');
  if (status === null) return;
  status.dataset.state = state;
  status.textContent = message;
}

/** @param {unknown} error */
function purchaseFailure(error) {
  const code = error instanceof Error && 'code' in error && typeof error.code === 'string'
    ? error.code : 'failed';
  if (code === 'site_rejected') {
    const detail = error instanceof Error && 'detail' in error ? String(error.detail) : '';
    return {
      code,
      message: `This site's server refused the payment receipt${detail ? ` (${detail})` : ''}; `
        + 'the article stays locked.',
    };
  }
  return { code, message: PURCHASE_FAILED[code] ?? 'The purchase failed; the article stays locked.' };
}

/** Buy the article for sale: the extension asks the reader, the bridge sends the one-time
 * receipt to our server, and the server's recorded purchase is what unlocks the body. */
async function buy() {
  const button = /** @type {HTMLButtonElement | null} */ (document.getElementById('buy-button'));
  if (button === null || !data.orderRef || !data.saleAmount) return;
  const requestPayment = /** @type {any} */ (bridge).requestPayment;
  if (typeof requestPayment !== 'function') {
    showPurchase('unavailable', 'This page cannot ask for one-time payments (its bridge is too old).');
    return;
  }
  button.disabled = true;
  showPurchase('waiting', 'Waiting for your approval in Trickle…');
  try {
    await requestPayment.call(bridge, {
      amount: data.saleAmount,
      currency,
      description: data.saleDescription ?? 'Article',
      orderRef: data.orderRef,
      purchaseUrl: data.purchaseUrl,
    });
    showPurchase('purchased', 'Paid. Thank you! Opening the article…');
    if (!(await checkAccess())) {
      showPurchase('purchased', 'Paid. Reload the page to read the article.');
    }
  } catch (error) {
    const failure = purchaseFailure(error);
    showPurchase(failure.code, failure.message);
  } finally {
    button.disabled = false;
  }
}

const buyButton = document.getElementById('buy-button');
if (buyButton !== null) {
  buyButton.addEventListener('click', () => void buy());
  if (bridge.state === 'unsupported') {
    showPurchase('unsupported', 'Buying needs the Trickle extension, which this browser does not '
      + 'seem to have: pressing Buy tells you for sure. Nothing is charged without your approval.');
  }
}

// The current state at once (also 'unsupported', which never changes), then every change.
bridge.onStateChange((state) => showState(state));
/** After each batch of receipts the server verified: what the visit has paid now. */
async function refreshPaid() {
  try {
    const response = await fetch('/api/visit', { credentials: 'same-origin', cache: 'no-store' });
    if (response.ok) showPaid((await response.json()).paid);
  } catch {
    // offline or restarting: the next batch asks again
  }
}

bridge.onForwarded((result) => {
  if (result.paid === null) return;
  void refreshPaid();
  if (data.premium === 'true' && BigInt(result.paid.total) >= priceMinor) void checkAccess();
});
