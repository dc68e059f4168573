/** Shares before a VM exists: located spec errors, the owner rule, the planner's refusal without virtiofsd, and the planned virtiofsd JailSpec run alone by `warden jail`. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDMAP_DIR, type JailSpec } from '../jail/index.js';
import { PlanError, buildPlan } from '../plan/index.js';
import { sketchFacts } from '../plan/testing.js';
import type { QemuCaps } from '../qemu/index.js';
import { parseSpec } from '../spec/index.js';
import { loadNative } from '../sys/index.js';
import { shareFacts } from './facts-shares.js';
import type { FactSources } from './facts.js';
import { repoRoot } from './guest.js';

const CLI = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
const QEMU = JSON.parse(readFileSync(join(repoRoot(), 'test/golden/plan/_facts/qemu-7.2.json'), 'utf8')) as QemuCaps;
const root = process.getuid?.() === 0;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-shares-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a share that is missing, a file, or named twice: every problem at once, located in the spec file', (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'file'), 'x');
  writeFileSync(join(dir, 'vm.yaml'), 'apiVersion: warden/v1\nname: sharetest\nshares:\n  - name: a\n    path: ./missing\n  - name: b\n    path: ./file\n');
  const r = spawnSync(process.execPath, [CLI, 'plan', join(dir, 'vm.yaml'), '--state-dir', dir], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /vm\.yaml:5:11: shares\[0\]\.path: shared directory .*missing does not exist/);
  assert.match(r.stderr, /vm\.yaml:7:11: shares\[1\]\.path: shared path .*file is not a directory/);
  writeFileSync(join(dir, 'dup.yaml'), 'apiVersion: warden/v1\nname: sharetest\nshares:\n  - { name: a, path: . }\n  - { name: a, path: . }\n');
  const d = spawnSync(process.execPath, [CLI, 'plan', join(dir, 'dup.yaml'), '--state-dir', dir], { encoding: 'utf8' });
  assert.match(d.stderr, /dup\.yaml:5:.*shares\[1\]\.name: duplicate share name "a"/);
});

test('a daemon VM\'s owner may share only a directory of their own; a symlinked share is resolved', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'real'));
  spawnSync('ln', ['-s', 'real', join(dir, 'link')]);
  const src = { programView: async () => null } as unknown as FactSources;
  const spec = parseSpec(`apiVersion: warden/v1\nname: t\nshares: [{ name: s, path: ${join(dir, 'link')} }]\n`, 't.yaml');
  const mine = await shareFacts(spec, src, undefined);
  assert.deepEqual(mine.issues, []);
  assert.equal(mine.shares?.[0]?.path, join(dir, 'real'));
  const theirs = await shareFacts(spec, src, { uid: 4242, gids: [] });
  assert.equal(theirs.issues[0]?.from, 'shares[0].path');
  assert.match(theirs.issues[0]!.message, /not to the VM's owner \(uid 4242\)/);
});

test('without virtiofsd the planner refuses the share, located', () => {
  const spec = parseSpec('apiVersion: warden/v1\nname: t\nshares: [{ name: s, path: /srv/s }]\n', 't.yaml');
  const facts = sketchFacts('t', QEMU, { shares: [{ path: '/srv/s', uid: 0, gid: 0 }] });
  delete facts.helpers!.virtiofsd;
  assert.throws(() => buildPlan(spec, facts), (e: unknown) => e instanceof PlanError && e.issues.some((i) => i.code === 'PLAN_MISSING_FACT' && i.from === 'shares[0]'));
});

/** One vhost-user request (GET_FEATURES) and its reply's request code and flags. */
function getFeatures(fd: number): Promise<{ request: number; flags: number }> {
  return new Promise((resolve, reject) => {
    const s = new Socket({ fd, readable: true, writable: true });
    const timer = setTimeout(() => { s.destroy(); reject(new Error('no vhost-user reply in 10 s')); }, 10_000);
    s.once('data', (b: Buffer) => { clearTimeout(timer); s.destroy(); resolve({ request: b.readUInt32LE(0), flags: b.readUInt32LE(4) }); });
    s.once('error', (e) => { clearTimeout(timer); reject(e); });
    const msg = Buffer.alloc(12);
    msg.writeUInt32LE(1, 0); // VHOST_USER_GET_FEATURES
    msg.writeUInt32LE(1, 4); // version 1
    s.write(msg);
  });
}

test('warden plan --json\'s virtiofsd JailSpec runs under warden jail --spec alone: it serves vhost-user from another uid\'s directory behind root\'s 0700 one, no other host user reaches it through the jailer\'s mount, and teardown leaves no mount', { skip: !root ? 'needs root: the jailer switches uids' : !existsSync('/usr/lib/qemu/virtiofsd') ? 'virtiofsd is not installed' : false, timeout: 60_000 }, async (t) => {
  const dir = tempDir(t);
  // Another uid's directory, open to all (0755) but behind root's 0700 temp directory: only the idmapped clone reaches it.
  const share = join(dir, 'open');
  mkdirSync(share, { mode: 0o755 });
  spawnSync('chown', ['4242:4242', share]);
  const name = `vfsalone${process.pid}`;
  writeFileSync(join(dir, 'vm.yaml'), `apiVersion: warden/v1\nname: ${name}\nshares: [{ name: s, path: ${share} }]\n`);
  const p = spawnSync(process.execPath, [CLI, 'plan', join(dir, 'vm.yaml'), '--json', '--state-dir', dir], { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  const jail = (JSON.parse(p.stdout) as { helpers: Array<{ jail: JailSpec }> }).helpers[0]!.jail;
  writeFileSync(join(dir, 'jail.json'), JSON.stringify(jail));
  const teardown = (): void => { spawnSync(process.execPath, [CLI, 'jail', '--teardown', jail.name]); };
  t.after(teardown);
  const [listening, connected] = loadNative().listenConnected(join(dir, 'vu.sock'));
  const run = spawn(process.execPath, [CLI, 'jail', '--spec', join(dir, 'jail.json'), '--detach'], { stdio: ['ignore', 'pipe', 'pipe', listening] });
  let err = '';
  run.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
  const code = await new Promise<number | null>((r) => run.on('exit', r));
  loadNative().closeFd(listening);
  assert.equal(code, 0, err);
  assert.ok(existsSync(join(IDMAP_DIR, jail.name)), 'the jailer attached the idmapped share');
  assert.equal(statSync(join(IDMAP_DIR, jail.name)).mode & 0o777, 0o710, 'only the jail\'s gid may pass');
  assert.notEqual(spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'ls', join(IDMAP_DIR, jail.name, String(jail.mounts.findIndex((m) => m.type === 'bind')))]).status, 0, 'another uid cannot reach the idmapped share on the host');
  const reply = await getFeatures(connected);
  assert.deepEqual(reply, { request: 1, flags: 5 }, 'virtiofsd answers GET_FEATURES (a reply, version 1)');
  teardown();
  assert.ok(!existsSync(join(IDMAP_DIR, jail.name)), 'teardown removed the idmapped mount');
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(share));
});

test('without root there is no jailer: shares are refused, located, before anything starts', (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to switch to an unprivileged uid');
  if (spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'test', '-r', CLI]).status !== 0) return t.skip(`${CLI} is not readable by uid 65534 (the checkout is in a directory other users cannot enter)`);
  const dir = tempDir(t);
  spawnSync('chmod', ['0777', dir]);
  writeFileSync(join(dir, 'vm.yaml'), `apiVersion: warden/v1\nname: nonroot\nshares:\n  - { name: a, path: ${dir} }\n`);
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'plan', join(dir, 'vm.yaml'), '--state-dir', join(dir, 'state')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /vm\.yaml:4:3: shares: shared folders need root/);
});
