/** tpm: true: swtpm in its own jail serves QEMU's TPM (query-tpm, /dev/tpm0 in the guest), its state survives a restart, and a killed swtpm leaves nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { loadNative } from '../sys/index.js';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { GUEST_READY_LINE, repoRoot } from './guest.js';
import { openManager } from './open.js';
import { outsideView } from './outside.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';
import { waitGone } from './teardown.js';
import { inspectRecord } from './view.js';

const root = process.getuid?.() === 0;
const skip = !root ? 'needs root: the jailer switches uids' : !existsSync('/usr/bin/swtpm') ? 'swtpm is not installed' : false;

const STATE_FILE = 'tpm2-00.permall';

/** Asks the guest's kernel for PCR 0 over the console: a TPM2_PCR_Read that only a working TPM answers. */
async function guestPcr0(serialSocket: string, log: string, tag: string): Promise<string> {
  const sock = createConnection({ path: serialSocket });
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => undefined);
  try {
    sock.write(`echo TPM${tag}-$(cat /sys/class/tpm/tpm0/pcr-sha256/0)-END\n`);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const m = new RegExp(`TPM${tag}-([0-9A-Fa-f]{64})-END`).exec(readFileSync(log, 'latin1'));
      if (m !== null) return m[1]!;
      if (Date.now() > deadline) throw new Error(`no PCR ${tag} on the console; it ends with ${readFileSync(log, 'latin1').slice(-600)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    sock.destroy();
  }
}

/** The serial log of the last start (the log writer marks each) once the guest is up in it. */
async function readyThisRun(serial: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = readFileSync(serial, 'latin1');
    const run = s.slice(s.lastIndexOf('--- warden: VM'));
    if (run.includes(GUEST_READY_LINE)) return run;
    if (Date.now() > deadline) throw new Error(`the restarted guest did not come up; its log ends with ${run.slice(-800)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The bytes of the TPM's permanent state that are random (its seeds): where two freshly made states differ. */
function randomPositions(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

test('tpm: swtpm jailed as its own uid backs QEMU\'s TPM, the guest sees /dev/tpm0, state persists across restarts, kill -9 then stop leaves nothing', { skip, timeout: 240_000 }, async (t) => {
  const env = testEnv('warden-tpm-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-tpm');
  const other = vmName('wdv-tpm2');
  t.after(async () => { for (const n of [name, other]) await m.kill(n).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name, extra: { tpm: true } }));
  const stateDir = join(m.store.paths(name).dir, 'tpm');

  await m.start(name);
  const serial = m.store.paths(name).serialLog;
  const text = await waitForText(serial, GUEST_READY_LINE, 60_000);
  assert.match(text, /WARDEN-TPM \/dev\/tpm0 version 2/, 'the guest kernel found the TPM (tpm_crb)');
  const pcr = await guestPcr0(m.store.paths(name).serialSocket, serial, 'A');
  t.diagnostic(`guest PCR 0 (sha256): ${pcr}`);
  const tpms = (await m.qmp(name, 'query-tpm')) as Array<{ model: string; options: { type: string; data: { chardev: string } } }>;
  assert.deepEqual(tpms.map((x) => [x.model, x.options.type]), [['tpm-crb', 'emulator']]);

  const rec = await m.reconcile(name, true);
  const helper = rec.helpers?.find((h) => h.kind === 'swtpm');
  assert.ok(helper !== undefined, 'the record names the swtpm helper');
  const qemu = await outsideView(m.fs, rec.run!.qemu.pid);
  const swtpm = await outsideView(m.fs, helper.proc.pid);
  assert.ok(qemu !== null && swtpm !== null);
  assert.notEqual(swtpm.uid, 0);
  assert.notEqual(swtpm.uid, qemu.uid, 'swtpm has a uid of its own');
  assert.equal(swtpm.capEff, '0000000000000000', 'no capabilities');
  assert.ok(swtpm.ownNamespaces.includes('mnt'), 'own mount namespace');
  assert.ok(swtpm.ownNamespaces.includes('net'), 'no network: its channels are fds');
  assert.equal(statSync(stateDir).uid, swtpm.uid, 'the state directory is lent to swtpm\'s uid while it runs');
  assert.deepEqual(readdirSync(`/proc/${helper.proc.pid}/root/usr/bin`), ['swtpm'], 'swtpm\'s view holds no other program');
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { manifest: Array<{ kind: string; resource: string }> };
  assert.ok(plan.manifest.some((e) => e.kind === 'helper' && e.resource === helper.jailName));
  const shown = await inspectRecord(m.fs, m.store, rec);
  assert.ok(shown.helpers.some((h) => h.kind === 'swtpm' && h.alive && h.uid === helper.uid));

  await m.stop(name);
  assert.ok(await waitGone(m.fs, helper.proc, 5000));
  const first = readFileSync(join(stateDir, STATE_FILE));
  assert.equal(statSync(stateDir).uid, 0, 'root\'s again once swtpm is gone');
  assert.equal(statSync(join(stateDir, STATE_FILE)).uid, 0);

  // A second VM's fresh TPM tells which bytes are random (seeds); the restarted TPM must keep ours.
  await m.create(env.specFile({ name: other, extra: { tpm: true } }));
  await m.start(other);
  await waitForText(m.store.paths(other).serialLog, GUEST_READY_LINE, 60_000);
  await m.stop(other);
  const fresh = readFileSync(join(m.store.paths(other).dir, 'tpm', STATE_FILE));
  const seeds = randomPositions(first, fresh);
  assert.ok(seeds.length >= 64, `two TPMs differ in their seeds (${seeds.length} bytes)`);

  await m.start(name);
  const boot2 = await readyThisRun(serial, 60_000);
  assert.match(boot2, /WARDEN-TPM \/dev\/tpm0 version 2/, 'the restarted guest finds its TPM, on the kept state');
  const rec2 = await m.reconcile(name, true);
  const helper2 = rec2.helpers!.find((h) => h.kind === 'swtpm')!;
  assert.equal(statSync(stateDir).uid, helper2.uid);
  process.kill(helper2.proc.pid, 'SIGKILL');
  assert.ok(await waitGone(m.fs, helper2.proc, 5000));
  const after = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.ok(after.helpers.some((h) => h.kind === 'swtpm' && !h.alive), 'a dead swtpm is reported with the VM');
  await m.stop(name);
  const second = readFileSync(join(stateDir, STATE_FILE));
  const kept = seeds.filter((i) => first[i] === second[i]).length;
  t.diagnostic(`state ${first.length} bytes, ${seeds.length} random bytes, ${kept} kept across the restart`);
  // Not every differing byte is a seed: the clock and counters of a TPM's state also differ between two TPMs and move
  // across a restart (up to ~11% of them seen here). A fresh TPM would match ~1/256 of them by chance; a kept state, most.
  assert.ok(kept >= seeds.length * 0.5, `the restarted TPM kept its state: ${kept} of ${seeds.length} random bytes unchanged`);
  assert.equal(statSync(stateDir).uid, 0);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(helper2.jailName, env.stateRoot), [], 'nothing of swtpm either (process, cgroup, lease)');

  await m.delete(name);
  assert.equal(existsSync(stateDir), false, 'the TPM state is removed with the VM');
});

test('the manager killed after swtpm started (before QEMU\'s jail): reconcile stops swtpm and gives its state back to root', { skip, timeout: 120_000 }, async (t) => {
  const env = testEnv('warden-tpm-die-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-tdie');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name, extra: { tpm: true } }));
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'bin.js'), 'start', name, '--state-dir', env.stateRoot],
    { env: { ...process.env, WARDEN_TEST_DIE_BEFORE: 'jail' }, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.signal, 'SIGKILL', r.stderr);
  const helper = (await m.store.read(name)).helpers?.[0];
  assert.ok(helper !== undefined && helper.kind === 'swtpm', 'swtpm was recorded before the manager died');
  const stateDir = join(m.store.paths(name).dir, 'tpm');
  assert.equal(statSync(stateDir).uid, helper.uid, 'lent to swtpm\'s uid');
  const rec = await m.reconcile(name);
  assert.equal(rec.lastExit?.reason, 'interrupted');
  assert.equal(statSync(stateDir).uid, 0, 'root\'s again');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(helper.jailName, env.stateRoot), []);
});

/** `warden ARGS` from this checkout with fds 3 and 4 handed over; resolves with its exit and output, killing it after `ms`. */
function warden(args: string[], fds: number[], ms: number): Promise<{ code: number | null; out: string; timedOut: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'bin.js'), ...args], { stdio: ['ignore', 'pipe', 'pipe', ...fds] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr!.on('data', (b: Buffer) => { out += b.toString(); });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGTERM'); }, ms);
    child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, timedOut }); });
  });
}

test('the planned swtpm JailSpec runs alone under warden jail --spec (fds 3 and 4), and its Landlock layer refuses a state directory elsewhere', { skip, timeout: 60_000 }, async (t) => {
  const env = testEnv('warden-tpm-alone-');
  const specFile = env.specFile({ name: vmName('wdv-talone'), extra: { tpm: true } });
  const planned = await warden(['plan', specFile, '--json', '--state-dir', env.stateRoot], [], 30_000);
  const jail = (JSON.parse(planned.out) as { helpers: Array<{ kind: string; jail: { name: string; argv: string[] } }> }).helpers.find((h) => h.kind === 'swtpm')!.jail;
  const jailName = jail.name;
  assert.match(jailName, /-swtpm-tpm0$/);
  t.after(async () => { await warden(['jail', '--teardown', jailName], [], 20_000); env.cleanup(); });
  // A state directory anyone may write (behind this test's 0700 directory: reached through the fd only).
  const state = join(env.dir, 'tpm');
  mkdirSync(state, { mode: 0o777 });
  chmodSync(state, 0o777);
  const run = async (argv: string[]): Promise<{ code: number | null; out: string; timedOut: boolean }> => {
    const file = join(env.dir, 'swtpm.json');
    writeFileSync(file, JSON.stringify({ ...jail, argv }));
    const [mine, theirs] = loadNative().socketpair();
    const dir = openSync(state, 'r');
    try {
      return await warden(['jail', '--spec', file], [theirs, dir], 4000);
    } finally {
      for (const fd of [mine, theirs, dir]) closeSync(fd);
      await warden(['jail', '--teardown', jailName], [], 20_000);
    }
  };
  // not-need-init: swtpm initializes at once (no QEMU to send CMD_INIT) and writes its state.
  const ok = await run([...jail.argv, '--flags', 'not-need-init']);
  assert.ok(ok.timedOut, `swtpm keeps serving: ${ok.out}`);
  assert.ok(existsSync(join(state, '.lock')), `swtpm wrote beneath its fd 4: ${readdirSync(state).join(' ')}`);
  const denied = await run([jail.argv[0]!, 'socket', '--tpm2', '--ctrl', 'type=unixio,clientfd=3', '--tpmstate', 'dir=/tmp', '--flags', 'not-need-init']);
  assert.match(denied.out, /lockfile: Permission denied/, 'Landlock: no writes outside the state directory (the jail\'s /tmp is writable otherwise)');
  assert.deepEqual(leftovers(jailName, env.stateRoot), []);
});

test('save and restore a VM with a TPM: the restored guest\'s TPM answers, swtpm restarted in its own jail on the VM\'s state; restored as another VM it carries the same TPM', { skip, timeout: 180_000 }, async (t) => {
  const env = testEnv('warden-tpm-save-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-tsave');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name, extra: { tpm: true } }));
  await m.start(name);
  const p = m.store.paths(name);
  await waitForText(p.serialLog, GUEST_READY_LINE, 60_000);
  const before = await guestPcr0(p.serialSocket, p.serialLog, 'S');
  const file = join(env.dir, 'vm.state');
  assert.equal((await m.save(name, file)).migration.status, 'completed');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  const r = await m.restore(file);
  assert.equal(r.record.phase, 'running');
  const helper = r.record.helpers?.find((h) => h.kind === 'swtpm');
  assert.ok(helper !== undefined && statSync(join(p.dir, 'tpm')).uid === helper.uid, 'a new swtpm owns the state for the restored run');
  assert.equal(await guestPcr0(p.serialSocket, p.serialLog, 'R'), before, 'the restored TPM answers with the PCRs it had (its volatile state came through the migration stream)');
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(helper.jailName, env.stateRoot), []);
  assert.equal(statSync(join(p.dir, 'tpm')).uid, 0);

  // Restored as another VM (as a migration target would be): its own, empty state directory receives
  // the TPM's permanent state from the stream. Two fresh TPMs differ in about a third of the bytes (seeds).
  const other = vmName('wdv-tsave2');
  t.after(async () => { await m.kill(other).catch(() => undefined); });
  await m.restore(file, { name: other });
  const q = m.store.paths(other);
  assert.equal(await guestPcr0(q.serialSocket, q.serialLog, 'O'), before);
  await m.kill(other);
  const mine = readFileSync(join(p.dir, 'tpm', STATE_FILE));
  const theirs = readFileSync(join(q.dir, 'tpm', STATE_FILE));
  const differ = randomPositions(mine, theirs).length + Math.abs(mine.length - theirs.length);
  t.diagnostic(`permanent state of the restored copy: ${differ} of ${mine.length} bytes differ from the original's`);
  assert.ok(differ < mine.length / 20, 'the copy carries the same TPM (seeds), not a fresh one');
  assert.deepEqual(leftovers(other, env.stateRoot), []);
});
