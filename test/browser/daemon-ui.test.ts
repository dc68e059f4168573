/**
 * The web console end to end, as a user meets it: `warden daemon --http` started as the
 * README says, a login URL from `warden ui --url`, real headless Chromium, a real jailed VM
 * (the busybox test guest): create it from the editor, start it and watch the phase change
 * on another page that only listens to events, type into the serial console and read the
 * answer, take the console over from a second page, get a framebuffer through noVNC, and
 * read the confinement and plan views; the login code refused on reuse; 401 without credentials.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE, repoRoot, testEnv } from '../../src/vm/index.js';
import { http, removeDir, socketDir } from '../api/helpers.js';
import { browserMissing, launchBrowser, request, screenshot, waitIn } from './harness.js';

const bin = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
const skip = process.getuid?.() !== 0 ? 'needs root: the daemon jails VMs under leased uids' : browserMissing();

/** `warden daemon --http 127.0.0.1:0`; resolves with its HTTPS origin once it serves. */
async function startDaemon(socket: string, stateDir: string): Promise<{ origin: string; stop: () => Promise<void>; stderr: () => string }> {
  const proc = spawn(process.execPath, [bin, 'daemon', '--socket', socket, '--state-dir', stateDir, '--http', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const origin = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`the daemon did not start within 60 s: ${err}`)); }, 60_000);
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
      const m = /web console on (https:\/\/\S+) /.exec(err);
      if (m !== null && err.includes(`on ${socket}`)) { clearTimeout(timer); resolve(m[1]!); }
    });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the daemon exited (${code}): ${err}`)); });
  });
  return {
    origin, stderr: () => err,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await gone;
    },
  };
}

/** Progress on stderr, so a stuck step is named in the test's output. */
const step = (what: string): void => { process.stderr.write(`# ${new Date().toISOString().slice(11, 19)} ${what}\n`); };

const termText = `[...document.querySelectorAll('.xterm-rows > div')].map((d) => d.textContent).join('\\n')`;

test('web console on the real daemon: login URL, live phase, serial console with take-over, display, confinement, plan; code reuse and no credentials refused', { skip: skip ?? false, timeout: 600_000 }, async (t) => {
  const env = testEnv('warden-ui-e2e-');
  const sdir = socketDir();
  const socket = join(sdir, 'warden.sock');
  const name = `ui-${process.pid % 100000}`;
  const d = await startDaemon(socket, env.stateRoot);
  t.after(async () => {
    await http(socket, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    await d.stop();
    env.cleanup();
    removeDir(sdir);
  });
  const cert = readFileSync(join(env.stateRoot, 'tls', 'server.crt'), 'utf8');
  const url = (p: string): string => `${d.origin}${p}`;

  step('No credentials: 401 with the error body; the certificate ');
  // No credentials: 401 with the error body; the certificate made for loopback is the one served.
  const anon = await request(url('/v1/vms'), cert);
  assert.equal(anon.status, 401, anon.body);
  assert.equal(JSON.parse(anon.body).error.code, 'AUTH_REQUIRED');

  step('A bearer token from the CLI works until it is revoked.');
  const warden = (...args: string[]): string => execFileSync(process.execPath, [bin, ...args, '--state-dir', env.stateRoot], { encoding: 'utf8' }).trim();
  const token = warden('token', 'create', '--name', 'ci');
  const bearer = { authorization: `Bearer ${token}` };
  assert.equal((await request(url('/v1/vms'), cert, { headers: bearer })).status, 200);
  const listed = JSON.parse(warden('token', 'list', '--json')) as Array<{ id: string; name: string }>;
  assert.deepEqual(listed.map((x) => x.name), ['ci']);
  assert.equal(JSON.stringify(listed).includes(token.slice(-20)), false, 'the list never shows a secret');
  warden('token', 'revoke', listed[0]!.id);
  assert.equal((await request(url('/v1/vms'), cert, { headers: bearer })).status, 401, 'a revoked token is refused');

  step('The login URL, as a user gets it.');
  // The login URL, as a user gets it.
  const login = warden('ui', '--url');
  assert.match(login, /^https:\/\/127\.0\.0\.1:\d+\/ui\/login\?code=/);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(login);
  assert.equal(page.url(), url('/ui/'));
  await waitIn(page, 'the empty list', `document.querySelector('td.empty') !== null`);
  assert.match(await page.$eval('header .who', (e) => e.textContent ?? ''), /uid 0 \(admin\)/);

  step('The code once more, in a fresh context: refused.');
  // The code once more, in a fresh context: refused; and a cross-site state change with the session but no CSRF token: 403.
  const other = await browser.createBrowserContext();
  t.after(() => other.close().catch(() => undefined));
  const reused = await (await other.newPage()).goto(login);
  assert.equal(reused?.status(), 401);
  const cookie = (await page.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await request(url('/v1/vms'), cert, { method: 'POST', headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/json' }, body: '{}' });
  assert.equal(forged.status, 403, 'a foreign Origin with the session cookie');
  const noCsrf = await request(url('/v1/vms'), cert, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: '{}' });
  assert.equal(JSON.parse(noCsrf.body).error.code, 'AUTH_CSRF', 'the session cookie alone cannot change state');

  step('Create from the editor: the spec (absolute paths, in a 07');
  // Create from the editor: the spec (absolute paths, in a 0700 directory) with a display.
  const spec = { ...JSON.parse(readFileSync(env.specFile({ name }), 'utf8')) as Record<string, unknown>, vnc: true };
  await page.goto(url('/ui/#/create'));
  await page.waitForSelector('textarea.editor');
  await page.evaluate(`(() => { const t = document.querySelector('textarea.editor'); t.value = ${JSON.stringify(JSON.stringify(spec, null, 2))}; t.dispatchEvent(new Event('input')); })()`);
  await waitIn(page, 'the spec checked valid', `document.querySelector('.status .ok') !== null`);
  await page.click('#create');
  await waitIn(page, 'the new VM page', `location.hash === '#/vm/${name}/overview'`);

  step('A second page that only listens: the phase change reaches');
  // A second page that only listens: the phase change reaches it by the event stream.
  const watcher = await browser.newPage();
  await watcher.goto(url('/ui/'));
  await waitIn(watcher, 'the created row', `document.querySelector('tr[data-vm="${name}"]')?.getAttribute('data-phase') === 'created'`);
  await waitIn(watcher, 'the event stream', `document.body.dataset['events'] === 'open'`);
  await page.bringToFront(); // a background tab in headless Chromium does not render: clicks there never land
  await page.goto(url('/ui/'));
  await page.waitForSelector(`tr[data-vm="${name}"] button[data-action="start"]`);
  await page.click(`tr[data-vm="${name}"] button[data-action="start"]`);
  await waitIn(watcher, 'the running phase, pushed', `document.querySelector('tr[data-vm="${name}"]')?.getAttribute('data-phase') === 'running'`, 120_000);
  await waitIn(page, 'the running phase', `document.querySelector('tr[data-vm="${name}"]')?.getAttribute('data-phase') === 'running'`, 120_000);
  await screenshot(page, 'list');

  step('Serial console: the backlog, then a command typed and its');
  // Serial console: the backlog, then a command typed and its output read.
  await page.goto(url(`/ui/#/vm/${name}/console`));
  await waitIn(page, 'the live console', `document.querySelector('.term')?.dataset['state'] === 'live'`);
  await waitIn(page, 'the guest ready line', `${termText}.includes('${GUEST_READY_LINE}')`, 120_000);
  await page.click('.term');
  await page.keyboard.type('echo $((6*7))-ok\n');
  await waitIn(page, 'the command output', `${termText}.includes('42-ok')`, 60_000);
  await screenshot(page, 'console');

  step('One interactive client: a second page is refused, takes o');
  // One interactive client: a second page is refused, takes over, and the first is told.
  await watcher.bringToFront();
  await watcher.goto(url(`/ui/#/vm/${name}/console`));
  await waitIn(watcher, 'the busy console', `document.querySelector('.term')?.dataset['state'] === 'busy'`);
  await watcher.click('.console .toolbar button');
  await waitIn(watcher, 'the taken-over console', `document.querySelector('.term')?.dataset['state'] === 'live'`);
  await waitIn(page, 'the first client told', `document.querySelector('.term')?.dataset['state'] === 'busy'`);
  await watcher.goto(url('/ui/'));
  await page.bringToFront();

  step('Display: noVNC through the socketpair QEMU was handed; a ');
  // Display: noVNC through the socketpair QEMU was handed; a frame with content arrives.
  await page.goto(url(`/ui/#/vm/${name}/display`));
  await waitIn(page, 'a drawn framebuffer', `document.querySelector('.screen')?.dataset['drawn']`, 60_000);
  await screenshot(page, 'display');

  step('Confinement: the jailed QEMU seen from the host.');
  // Confinement: the jailed QEMU seen from the host.
  await page.goto(url(`/ui/#/vm/${name}/confinement`));
  await waitIn(page, 'the process facts', `document.querySelector('[data-fact="uid"]') !== null`);
  const uid = Number((await page.$eval('[data-fact="uid"]', (e) => e.textContent ?? '')).split(':')[0]);
  assert.ok(uid >= 1000, `QEMU runs under a leased uid, not root (${uid})`);
  assert.equal(await page.$eval('[data-fact="caps"]', (e) => e.textContent), 'none (CapEff 0)');
  assert.equal(await page.$eval('[data-fact="nnp"]', (e) => e.textContent), 'set');
  assert.match(await page.$eval('[data-fact="seccomp"]', (e) => e.textContent ?? ''), /filter/);
  assert.ok((await page.$$('[data-fact="ns"] .ns.own')).length >= 5, 'QEMU has its own namespaces');
  const fds = await page.$$eval('table.fds td code', (els) => els.map((e) => e.textContent ?? ''));
  assert.ok(fds.some((f) => f.startsWith('socket:')), 'the fds QEMU holds are listed');
  assert.ok((await page.$$('table.manifest tbody tr')).length >= 5, 'the manifest is listed');
  await page.evaluate('window.scrollTo(0, 0)');
  await screenshot(page, 'confinement');

  step('Plan: argv traced to the spec.');
  // Plan: argv traced to the spec.
  await page.goto(url(`/ui/#/vm/${name}/plan`));
  await page.waitForSelector('table.argv tbody tr');
  assert.ok((await page.$$('table.argv button.from[data-from="memory"]')).length >= 1, 'the -m option is traced to memory');
  await screenshot(page, 'plan');

  step('Logs: the serial log.');
  await page.goto(url(`/ui/#/vm/${name}/logs`));
  await waitIn(page, 'the serial log', `document.querySelector('#serial-log')?.textContent.includes('${GUEST_READY_LINE}')`);

  step('One set of operations for both listeners: one started over HTTPS is waited for on the unix socket.');
  const csrf = (await page.cookies()).find((c) => c.name === 'warden_csrf')!.value;
  const op = await request(url(`/v1/vms/${name}/state`), cert, {
    method: 'PUT', headers: { cookie, 'x-warden-csrf': csrf, origin: d.origin, 'content-type': 'application/json' }, body: '{"action":"pause"}',
  });
  assert.equal(op.status, 202, op.body);
  const done = await http(socket, 'GET', `/v1/operations/${JSON.parse(op.body).operation.id as string}/wait?wait=60`);
  assert.equal(done.status, 200, done.text);
  assert.equal(done.json.operation.status, 'succeeded');
  assert.deepEqual(errors, [], 'no script errors in the page');
});
