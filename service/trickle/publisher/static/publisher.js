// The demo publisher's page script: the page bridge set up exactly as sdk_js_bridge/README.md
// tells site owners, plus the paywall. The server decides what unlocks: this script only shows
// what the server reports (the verified total) and asks it for the premium body.
import { createBridge, formatMinor } from '/sdk/bridge.js';

const data = document.body.dataset;
const scale = Number(data.scale);
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
    hint.textContent = `This article unlocks once your visit has paid ${formatMinor(priceMinor, scale)} ${currency}.`;
  }
}

/** @param {bigint} paid */
function showPaid(paid) {
  const output = document.getElementById('paid');
  if (output !== null) {
    output.dataset.minor = paid.toString();
    output.textContent = `${formatMinor(paid, scale)} ${currency}`;
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
  if (!url || asking || body === null || body.dataset.state === 'unlocked') return;
  asking = true;
  try {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (!response.ok) return;
    const access = await response.json();
    showPaid(BigInt(access.paid.total));
    if (access.unlocked === true && typeof access.html === 'string') {
      body.innerHTML = access.html; // rendered (and escaped) by our own server
      body.dataset.state = 'unlocked';
      body.hidden = false;
      const paywall = document.getElementById('paywall');
      if (paywall !== null) {
        paywall.dataset.state = 'unlocked';
        paywall.hidden = true;
      }
    }
  } catch {
    // offline or the server is restarting: the next forwarded batch asks again
  } finally {
    asking = false;
  }
}

showState(bridge.state);
bridge.onStateChange((state) => showState(state));
bridge.onForwarded((result) => {
  if (result.paid === null) return;
  const paid = BigInt(result.paid.total);
  showPaid(paid);
  if (data.premium === 'true' && paid >= priceMinor) void checkAccess();
});
