import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowsMonetization, chooseLink, httpOrigin, isMonetizationRel, serviceUrls, validBinding, validPointer } from '../shared/links.js';

test('rel keyword matching is token based and case-insensitive', () => {
  assert.ok(isMonetizationRel('monetization'));
  assert.ok(isMonetizationRel('Monetization'));
  assert.ok(isMonetizationRel('preload  monetization\tfoo'));
  assert.ok(!isMonetizationRel('monetizations'));
  assert.ok(!isMonetizationRel('x-monetization'));
  assert.ok(!isMonetizationRel(''));
  assert.ok(!isMonetizationRel(null));
});

test('pointers must be absolute http(s) URLs without credentials', () => {
  assert.equal(validPointer('https://trickle.example/p/alice'), 'https://trickle.example/p/alice');
  assert.equal(validPointer('http://127.0.0.1:8420/p/demo'), 'http://127.0.0.1:8420/p/demo');
  for (const bad of ['', '/p/alice', 'p/alice', 'javascript:alert(1)', 'data:text/plain,x', 'ftp://x/p/a',
    'https://user:pw@x.example/p/a', 'https://', 'not a url', `https://x.example/${'a'.repeat(300)}`, 42, null]) {
    assert.equal(validPointer(bad), null, String(bad));
  }
});

test('bindings are 1-256 printable ASCII characters, else ignored', () => {
  assert.equal(validBinding('visit-42'), 'visit-42');
  assert.equal(validBinding('a'.repeat(256)), 'a'.repeat(256));
  assert.equal(validBinding('a'.repeat(257)), null);
  assert.equal(validBinding(''), null);
  assert.equal(validBinding('caf\u00e9'), null);
  assert.equal(validBinding('line\nbreak'), null);
  assert.equal(validBinding(null), null);
});

test('a page pays its first valid link, one at a time', () => {
  const links = [
    { id: '1', href: 'javascript:void(0)', binding: null },
    { id: '2', href: 'https://t.example/p/alice', binding: 'b-1' },
    { id: '3', href: 'https://t.example/p/bob', binding: null },
  ];
  assert.deepEqual(chooseLink(links), { id: '2', pointer: 'https://t.example/p/alice', binding: 'b-1' });
  // the service refused alice: the next one
  assert.deepEqual(chooseLink(links, new Set(['https://t.example/p/alice'])), { id: '3', pointer: 'https://t.example/p/bob', binding: null });
  assert.equal(chooseLink(links, new Set(['https://t.example/p/alice', 'https://t.example/p/bob'])), null);
  assert.equal(chooseLink([]), null);
  assert.equal(chooseLink([{ id: '1', href: 'nope', binding: 'x' }]), null);
});

test('an invalid binding does not stop the link being paid', () => {
  assert.deepEqual(chooseLink([{ id: '9', href: 'https://t.example/p/a', binding: '\u0000' }]), { id: '9', pointer: 'https://t.example/p/a', binding: null });
});

test('frames monetize only with allow="monetization"', () => {
  assert.ok(allowsMonetization('monetization'));
  assert.ok(allowsMonetization('fullscreen; Monetization'));
  assert.ok(allowsMonetization("monetization 'src'"));
  assert.ok(allowsMonetization('monetization *'));
  assert.ok(!allowsMonetization("monetization 'none'"));
  assert.ok(!allowsMonetization('fullscreen; payment'));
  assert.ok(!allowsMonetization('monetizationx'));
  assert.ok(!allowsMonetization(''));
  assert.ok(!allowsMonetization(null));
});

test('origins and service URLs', () => {
  assert.equal(httpOrigin('https://Blog.Example:443/a?b#c'), 'https://blog.example');
  assert.equal(httpOrigin('http://127.0.0.1:8000/x'), 'http://127.0.0.1:8000');
  assert.equal(httpOrigin('file:///etc/passwd'), null);
  assert.equal(httpOrigin('about:blank'), null);
  assert.equal(httpOrigin(undefined), null);
  assert.deepEqual(serviceUrls('http://127.0.0.1:8420'), { base: 'http://127.0.0.1:8420', stream: 'ws://127.0.0.1:8420/api/v1/stream', privateStream: 'ws://127.0.0.1:8420/api/v1/private-stream' });
  assert.deepEqual(serviceUrls('https://t.example/prefix/?q=1#x'), { base: 'https://t.example/prefix', stream: 'wss://t.example/prefix/api/v1/stream', privateStream: 'wss://t.example/prefix/api/v1/private-stream' });
  assert.throws(() => serviceUrls('ftp://x'), TypeError);
  assert.throws(() => serviceUrls('https://u:p@x.example'), TypeError);
  assert.throws(() => serviceUrls('not a url'), TypeError);
});
