// Progressive enhancement for the dashboard; every page works without it.
// - a "Copy" button above each snippet (pre[data-copy]);
// - a form marked data-once disables its submit button once submitted, so a double click sends
//   one request (the server stays safe regardless: claim forms carry an idempotency key).
// No inline scripts (the Content-Security-Policy forbids them) and nothing secret is read here.

/** @param {string} message */
function announce(message) {
  const live = document.getElementById('live');
  if (live) live.textContent = message;
}

/**
 * @param {string} text
 * @returns {Promise<void>}
 */
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http (local development): the older selection-based copy.
  const area = document.createElement('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'visually-hidden';
  document.body.append(area);
  area.select();
  const copied = document.execCommand('copy');
  area.remove();
  if (!copied) throw new Error('copy refused');
}

function addCopyButtons() {
  for (const pre of document.querySelectorAll('pre[data-copy]')) {
    const what = pre.getAttribute('data-copy') || 'snippet';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button quiet copy';
    button.textContent = 'Copy';
    button.setAttribute('aria-label', `Copy ${what}`);
    button.addEventListener('click', () => {
      copyText(pre.textContent || '').then(
        () => {
          button.textContent = 'Copied';
          announce(`Copied ${what}`);
          setTimeout(() => { button.textContent = 'Copy'; }, 2000);
        },
        () => announce('Copy failed: select the text and copy it by hand'),
      );
    });
    pre.before(button);
  }
}

function guardDoubleSubmits() {
  for (const form of document.querySelectorAll('form[data-once]')) {
    form.addEventListener('submit', () => {
      for (const button of form.querySelectorAll('button[type="submit"]')) {
        if (button instanceof HTMLButtonElement) button.disabled = true;
      }
    });
  }
}

// Back to a page from the browser's cache: its buttons must work again.
window.addEventListener('pageshow', () => {
  for (const button of document.querySelectorAll('form[data-once] button[disabled]')) {
    if (button instanceof HTMLButtonElement) button.disabled = false;
  }
});

addCopyButtons();
guardDoubleSubmits();
