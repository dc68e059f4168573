/** The HTTPS listener's credentials: login codes, sessions, bearer tokens, the request guard, and the TLS address and certificate rules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuthStore } from './http-auth.js';
import { authenticate, CSRF_HEADER, parseCookies, sessionCookies, type GuardRequest } from './http-guard.js';
import { loadTls, parseHttpListen } from './http-tls.js';

const code = (c: string) => (e: { code?: string }) => e.code === c;

function store(t: { after: (fn: () => void) => void }, now?: () => number): AuthStore {
  const dir = mkdtempSync(join(tmpdir(), 'warden-auth-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new AuthStore({ dir, ...(now === undefined ? {} : { now }) });
}

test('a login code gives one session, once; a used or expired code is refused', (t) => {
  let clock = 1_000_000;
  const s = store(t, () => clock);
  const { code: c } = s.createLoginCode(1000, 'user');
  const session = s.redeemLoginCode(c);
  assert.equal(session.uid, 1000);
  assert.equal(s.session(session.id)?.uid, 1000);
  assert.throws(() => s.redeemLoginCode(c), code('AUTH_CODE_INVALID'), 'a code works once');
  const late = s.createLoginCode(0, 'admin');
  clock += 61_000;
  assert.throws(() => s.redeemLoginCode(late.code), code('AUTH_CODE_INVALID'), 'an expired code is refused');
  assert.throws(() => s.redeemLoginCode('made-up'), code('AUTH_CODE_INVALID'));
  clock += 13 * 3600_000;
  assert.equal(s.session(session.id), undefined, 'an idle session expires');
});

test('bearer tokens: shown once, stored hashed in a 0600 file, listed per owner, revoked by their owner', (t) => {
  const s = store(t);
  const a = s.createToken(1000, 'user', 'ci');
  const b = s.createToken(0, 'admin', 'ops');
  assert.match(a.token, /^wdn_[0-9a-f]{12}_/);
  assert.equal(s.checkToken(a.token)?.uid, 1000);
  assert.equal(s.checkToken(`${a.token.slice(0, -1)}x`), undefined, 'one changed character is refused');
  assert.deepEqual(s.listTokens(1000).map((x) => x.name), ['ci']);
  assert.equal(s.listTokens().length, 2);
  assert.equal(JSON.stringify(s.listTokens()).includes(a.token.slice(-43)), false, 'the secret is never listed');
  assert.throws(() => s.revokeToken(b.id, 1000), code('AUTH_TOKEN_NOT_FOUND'), 'one uid cannot revoke another\'s token');
  s.revokeToken(a.id, 1000);
  assert.equal(s.checkToken(a.token), undefined, 'a revoked token stops working');
});

test('the guard: 401 without credentials, bearer accepted, session needs CSRF and same Origin for changes and upgrades', (t) => {
  const s = store(t);
  const token = s.createToken(1000, 'user', 'x').token;
  const sess = s.redeemLoginCode(s.createLoginCode(1000, 'user').code);
  const cookie = sessionCookies(sess).map((c) => c.split(';')[0]).join('; ');
  const host = '127.0.0.1:8443';
  const req = (method: string, headers: GuardRequest['headers'], upgrade = false): GuardRequest => ({ method, headers: { host, ...headers }, upgrade });

  assert.throws(() => authenticate(req('GET', {}), s), code('AUTH_REQUIRED'));
  assert.throws(() => authenticate(req('GET', { cookie: 'warden_session=nope' }), s), code('AUTH_REQUIRED'));
  assert.throws(() => authenticate(req('GET', { authorization: 'Bearer wdn_nope' }), s), code('AUTH_TOKEN_INVALID'));
  assert.deepEqual(authenticate(req('POST', { authorization: `Bearer ${token}` }), s), { uid: 1000, role: 'user', via: 'token' });

  assert.equal(authenticate(req('GET', { cookie }), s).via, 'session');
  assert.throws(() => authenticate(req('PUT', { cookie, origin: `https://${host}` }), s), code('AUTH_CSRF'));
  assert.equal(authenticate(req('PUT', { cookie, origin: `https://${host}`, [CSRF_HEADER]: sess.csrf }), s).uid, 1000);
  assert.throws(() => authenticate(req('PUT', { cookie, origin: 'https://evil.example', [CSRF_HEADER]: sess.csrf }), s), code('AUTH_ORIGIN'));
  assert.throws(() => authenticate(req('GET', { cookie }, true), s), code('AUTH_ORIGIN'), 'an upgrade without an Origin');
  assert.throws(() => authenticate(req('GET', { cookie, origin: `http://${host}` }, true), s), code('AUTH_ORIGIN'), 'plain http origin');
  assert.equal(authenticate(req('GET', { cookie, origin: `https://${host}` }, true), s).uid, 1000);
  assert.equal(parseCookies(cookie)['warden_csrf'], sess.csrf);
});

test('--http: loopback gets a kept self-signed certificate; other addresses need given files', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'warden-tls-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  assert.deepEqual(parseHttpListen('[::1]:8443'), { host: '::1', port: 8443, loopback: true });
  assert.equal(parseHttpListen('0.0.0.0:443').loopback, false);
  for (const bad of ['8443', '127.0.0.1', 'host:99999', '[nothex]:1']) assert.throws(() => parseHttpListen(bad), code('USAGE_HTTP_ADDRESS'), bad);
  assert.throws(() => loadTls(parseHttpListen('0.0.0.0:8443'), root, {}), code('USAGE_HTTP_NEEDS_TLS'));
  assert.throws(() => loadTls(parseHttpListen('127.0.0.1:8443'), root, { cert: '/x' }), code('USAGE_TLS_FILES'));
  const first = loadTls(parseHttpListen('127.0.0.1:8443'), root, {});
  assert.equal(first.source, 'self-signed');
  assert.equal(statSync(join(root, 'tls', 'server.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(root, 'tls')).mode & 0o777, 0o700);
  assert.equal(loadTls(parseHttpListen('localhost:9443'), root, {}).fingerprint, first.fingerprint, 'the certificate is kept and reused');
  const given = loadTls(parseHttpListen('0.0.0.0:8443'), root, { cert: join(root, 'tls', 'server.crt'), key: join(root, 'tls', 'server.key') });
  assert.equal(given.source, 'given');
});
