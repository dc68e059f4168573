/**
 * The web console in real headless Chromium against the real HTTPS listener (guard, login
 * codes, sessions, CSRF, UI bundle) and a real QEMU for the display, with a small /v1 of the
 * test's own in place of the daemon's: login with a one-time URL, the code refused on reuse,
 * 401 without credentials, a phase change arriving live, a pause through the guard's CSRF
 * check, a framebuffer drawn by noVNC, the confinement view of the real QEMU process, and
 * spec errors shown at their lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { AuthStore } from '../../src/api/http-auth.js';
import { displayRoute } from '../../src/api/http-display.js';
import { identityOf, startHttps } from '../../src/api/http-server.js';
import { loadTls, parseHttpListen } from '../../src/api/http-tls.js';
import { QmpClient } from '../../src/qmp/index.js';
import { startQemu } from '../../src/qmp/testing/index.js';
import { NodeFs } from '../../src/sys/index.js';
import { outsideView } from '../../src/vm/index.js';
import { browserMissing, launchBrowser, request, screenshot, waitIn } from './harness.js';

const skip = browserMissing();

test('web console against the HTTPS listener: login, 401, live phase, CSRF-checked action, display, confinement, located spec errors', { skip: skip ?? false, timeout: 180_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), `warden-ui-${process.pid}-`));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const qemu = await startQemu({ machine: 'pc', extraArgs: ['-vnc', 'none', '-device', 'VGA'] });
  t.after(() => qemu.kill());
  const qmp = await QmpClient.connect({ path: qemu.sockets[0]! });
  t.after(() => qmp.close());
  await qmp.execute('cont'); // SeaBIOS draws its text on the VGA screen

  // The test's stand-in for the daemon's /v1: one VM backed by the real QEMU above.
  const vm = { name: 'web1', phase: 'running' as string };
  const sse = new Set<(e: object) => void>();
  const publish = (e: object): void => { for (const fn of sse) fn(e); };
  const auth = new AuthStore({ dir: join(root, 'auth') });
  const listen = parseHttpListen('127.0.0.1:0');
  const tls = loadTls(listen, root, {});
  const routes = (app: FastifyInstance): void => {
    app.get('/v1', (req) => ({ api: 'v1', version: 'test', caller: { uid: identityOf(req)!.uid, admin: identityOf(req)!.role === 'admin' } }));
    app.get('/v1/vms', () => ({ vms: [{ name: vm.name, phase: vm.phase, owner: 0, pid: qemu.child.pid, uid: 0, lastExit: null }] }));
    app.get('/v1/vms/web1', () => ({ name: vm.name, phase: vm.phase, spec: {}, run: { qemu: { pid: qemu.child.pid }, uid: 0 } }));
    app.get('/v1/vms/web1/inspect', async () => ({
      name: vm.name, phase: vm.phase, spec: { apiVersion: 'warden/v1', name: 'web1', vnc: true, memory: '128Mi' },
      run: { qemu: { pid: qemu.child.pid }, uid: 0, gid: 0, accel: 'tcg', startedAt: 'now', cgroups: [] },
      process: await outsideView(new NodeFs(), qemu.child.pid!), protectionsOff: ['test QEMU: not jailed'],
      plan: { argv: ['qemu', '-m', '128'], argvTrace: [{ arg: 'qemu', from: '(base)' }, { arg: '-m', from: 'memory' }, { arg: '128', from: 'memory' }], fds: [],
        jail: { identity: { uid: 0, gid: 0 }, mounts: [{ type: 'ro-bind', source: '/usr', target: '/usr' }], devices: [] },
        manifest: [{ kind: 'socket', resource: 'socketpair per display client', access: 'rw (passed)', from: 'vnc', note: 'display' }] },
    }));
    app.put<{ Body: { action: string } }>('/v1/vms/web1/state', async (req) => {
      if (req.body.action === 'pause') { await qmp.execute('stop'); vm.phase = 'paused'; }
      if (req.body.action === 'resume') { await qmp.execute('cont'); vm.phase = 'running'; }
      publish({ type: req.body.action === 'pause' ? 'paused' : 'resumed', vm: vm.name, phase: vm.phase });
      return { operation: { id: '1', vm: vm.name, action: req.body.action, status: 'succeeded' } };
    });
    app.get('/v1/events', (req, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      reply.raw.write(': hello\n\n');
      const fn = (e: object): void => { reply.raw.write(`event: ${(e as { type: string }).type}\ndata: ${JSON.stringify(e)}\n\n`); };
      sse.add(fn);
      req.raw.on('close', () => sse.delete(fn));
    });
  };
  const server = await startHttps({ listen, tls, auth, routes, upgrades: [displayRoute({ qmpFor: async () => qmp })] });
  t.after(() => server.close());
  const url = (p: string): string => `${server.origin}${p}`;

  // Without credentials: 401, for the API and for a WebSocket upgrade alike.
  const anon = await request(url('/v1/vms'), tls.cert);
  assert.equal(anon.status, 401);
  assert.equal(JSON.parse(anon.body).error.code, 'AUTH_REQUIRED');
  assert.match(String(anon.headers['www-authenticate']), /Bearer/);
  const ws = await request(url('/v1/vms/web1/display'), tls.cert, { headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
  assert.equal(ws.status, 401, 'an upgrade without a session is refused before any WebSocket exists');
  // A bearer token works for API clients.
  const token = auth.createToken(0, 'admin', 'test').token;
  assert.equal((await request(url('/v1/vms'), tls.cert, { headers: { authorization: `Bearer ${token}` } })).status, 200);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  // Not logged in: the page says how to log in.
  await page.goto(url('/ui/'));
  await waitIn(page, 'the login hint', `document.querySelector('.login') !== null`);

  // The one-time URL logs in, drops the code from the address bar, and shows the list.
  const loginUrl = server.loginUrl(auth.createLoginCode(0, 'admin').code);
  await page.goto(loginUrl);
  assert.equal(page.url(), url('/ui/'));
  await waitIn(page, 'the VM row', `document.querySelector('tr[data-vm="web1"]') !== null`);
  assert.match(await page.$eval('header .who', (e) => e.textContent ?? ''), /uid 0 \(admin\)/);
  await screenshot(page, 'list');

  // The same code again, from a fresh browser context: refused.
  const other = await browser.createBrowserContext();
  t.after(() => other.close().catch(() => undefined));
  const again = await other.newPage();
  const res = await again.goto(loginUrl);
  assert.equal(res?.status(), 401);
  assert.match(await again.content(), /used up or has expired/);

  // An action from the page passes the guard's CSRF and Origin checks; its event updates the row without a reload.
  await waitIn(page, 'the event stream', `document.body.dataset['events'] === 'open'`);
  await page.click('tr[data-vm="web1"] button[data-action="pause"]');
  await waitIn(page, 'the paused phase', `document.querySelector('tr[data-vm="web1"]')?.getAttribute('data-phase') === 'paused'`);
  assert.equal(((await qmp.execute('query-status')) as { status: string }).status, 'paused', 'QEMU really paused');
  vm.phase = 'running';
  await qmp.execute('cont');
  publish({ type: 'resumed', vm: 'web1' });
  await waitIn(page, 'the phase pushed by an event', `document.querySelector('tr[data-vm="web1"]')?.getAttribute('data-phase') === 'running'`);

  // Display: noVNC over the WebSocket, QEMU's end a socketpair; a frame with content arrives.
  await page.goto(url('/ui/#/vm/web1/display'));
  const drawn = await waitIn(page, 'a drawn framebuffer', `document.querySelector('.screen')?.dataset['drawn']`, 60_000);
  assert.match(String(drawn), /^\d+x\d+$/);
  await screenshot(page, 'display');

  // Confinement: the real QEMU process seen from the host.
  await page.goto(url('/ui/#/vm/web1/confinement'));
  await waitIn(page, 'the process facts', `document.querySelector('[data-fact="uid"]') !== null`);
  assert.equal(await page.$eval('[data-fact="uid"]', (e) => e.textContent), '0:0');
  assert.ok((await page.$$('table.fds tbody tr')).length >= 3, 'the fds QEMU holds are listed');
  await page.click('button.from[data-from="vnc"]');
  assert.equal(await page.$eval('pre.spec .line.hit .src', (e) => e.textContent), 'vnc: true', 'the manifest row points at its spec line');
  await screenshot(page, 'confinement');

  // Create: a spec with mistakes shows them at their lines, before anything is sent.
  await page.goto(url('/ui/#/create'));
  await page.waitForSelector('textarea.editor');
  await page.evaluate(`(() => { const t = document.querySelector('textarea.editor'); t.value = 'apiVersion: warden/v1\\nname: Bad_Name\\nmemory: lots\\ncpus: 1\\n'; t.dispatchEvent(new Event('input')); })()`);
  await waitIn(page, 'located issues', `document.querySelectorAll('ul.issues li').length >= 2`);
  const lines = await page.$$eval('ul.issues li', (els) => els.map((e) => Number(e.getAttribute('data-line'))));
  assert.ok(lines.includes(2) && lines.includes(3), `issues at lines 2 (name) and 3 (memory), got ${lines.join(',')}`);
  assert.ok((await page.$$('pre.gutter span.bad')).length >= 2, 'the gutter marks the lines');
  await screenshot(page, 'create');
  assert.deepEqual(errors, [], 'no script errors in the page');
});
