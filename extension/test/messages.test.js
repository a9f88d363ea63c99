import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MessageError, fail, isFromContentScript, isFromExtensionPage, ok, parsePageMessage, parseUiMessage } from '../shared/messages.js';

const PAGE = '0b8e3f1a-7c1d-4e2f-9a3b-5c6d7e8f9a0b';
const update = () => ({
  type: 'page/update',
  page: PAGE,
  links: [{ id: '1', href: 'https://t.example/p/a', binding: 'b' }],
  visible: true,
  focused: false,
  frozen: false,
});

test('a valid page update passes through unchanged', () => {
  assert.deepEqual(parsePageMessage(update()), update());
  assert.deepEqual(parsePageMessage({ type: 'page/leave', page: PAGE }), { type: 'page/leave', page: PAGE });
});

test('page messages are strict', () => {
  const bad = [
    null,
    'page/update',
    [],
    { type: 'page/nope', page: PAGE },
    { ...update(), extra: 1 },
    { ...update(), visible: 'true' },
    { ...update(), focused: 1 },
    { ...update(), page: 'short' },
    { ...update(), page: '../../etc' + 'x'.repeat(10) },
    { ...update(), links: 'x' },
    { ...update(), links: [{ id: '1', href: 'x' }] },
    { ...update(), links: [{ id: '1', href: 'x', binding: 5 }] },
    { ...update(), links: [{ id: '1', href: 7, binding: null }] },
    { ...update(), links: [{ id: 'a b', href: 'x', binding: null }] },
    { ...update(), links: [{ id: '1', href: 'x', binding: null, token: 'steal' }] },
    { ...update(), links: Array.from({ length: 51 }, (_, i) => ({ id: String(i), href: 'x', binding: null })) },
    { type: 'page/leave' },
    { type: 'page/leave', page: PAGE, token: 'x' },
  ];
  for (const raw of bad) assert.throws(() => parsePageMessage(raw), MessageError, JSON.stringify(raw)?.slice(0, 80));
});

test('ui messages are strict', () => {
  assert.deepEqual(parseUiMessage({ type: 'ui/state', tabId: 7 }), { type: 'ui/state', tabId: 7 });
  assert.deepEqual(parseUiMessage({ type: 'ui/state', tabId: null }), { type: 'ui/state', tabId: null });
  assert.deepEqual(parseUiMessage({ type: 'ui/sign-in', email: 'a@b.c', password: 'p' }), { type: 'ui/sign-in', email: 'a@b.c', password: 'p' });
  assert.deepEqual(parseUiMessage({ type: 'ui/site', tabId: 3, enabled: false, rate: null }), { type: 'ui/site', tabId: 3, enabled: false, rate: null });
  assert.deepEqual(parseUiMessage({ type: 'ui/limits', rate: '0.60', budget: '' }), { type: 'ui/limits', rate: '0.60', budget: '' });
  const bad = [
    { type: 'ui/state' },
    { type: 'ui/state', tabId: -1 },
    { type: 'ui/state', tabId: 1.5 },
    { type: 'ui/state', tabId: '3' },
    { type: 'ui/sign-in', email: 'a@b.c' },
    { type: 'ui/sign-out', now: true },
    { type: 'ui/pause', paused: 'yes' },
    { type: 'ui/site', tabId: 3, enabled: true, rate: 1.2 },
    { type: 'ui/redeem', code: 'x'.repeat(201) },
    { type: 'ui/service-url', url: 5 },
    { type: 'page/update' },
    { type: 'ui/unknown' },
  ];
  for (const raw of bad) assert.throws(() => parseUiMessage(raw), MessageError, JSON.stringify(raw));
});

test('reply shapes', () => {
  assert.deepEqual(ok(3), { ok: true, value: 3 });
  assert.deepEqual(fail('x', 'y'), { ok: false, error: { code: 'x', message: 'y' } });
});

test('senders are checked', () => {
  const id = 'abcdefghijklmnopabcdefghijklmnop';
  const base = `chrome-extension://${id}/`;
  const popup = { id, url: `${base}pages/popup.html` };
  const popupAsTab = { id, url: `${base}pages/popup.html?tab=4`, tab: { id: 9 }, frameId: 0 };
  const content = { id, url: 'https://blog.example/post', tab: { id: 4 }, frameId: 0 };
  assert.ok(isFromExtensionPage(popup, id, base));
  assert.ok(isFromExtensionPage(popupAsTab, id, base));
  assert.ok(!isFromExtensionPage(content, id, base));
  assert.ok(!isFromExtensionPage({ ...popup, id: 'other' }, id, base));
  assert.ok(!isFromExtensionPage({ id, url: `chrome-extension://other/pages/popup.html` }, id, base));
  assert.ok(isFromContentScript(content, id, base));
  assert.ok(!isFromContentScript(popupAsTab, id, base));
  assert.ok(!isFromContentScript({ ...content, tab: undefined }, id, base));
  assert.ok(!isFromContentScript({ ...content, id: 'other' }, id, base));
  assert.ok(!isFromContentScript({ ...content, frameId: undefined }, id, base));
  assert.ok(!isFromContentScript({ ...content, tab: { id: -1 } }, id, base));
});
