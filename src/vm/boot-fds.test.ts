/**
 * Boot files by fd, end to end: spec, disk, kernel and initrd (mode 0600) in a 0700
 * directory boot in the jail under BIOS and UEFI; `warden plan --json` is the plan start ran,
 * and the started QEMU's /proc/PID/fd is exactly what it lists (target, kind, path, access
 * mode); the UEFI vars are made at the first start, kept across a restart and removed with
 * the VM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE, ensureTestGuest } from './guest.js';
import { openManager } from './open.js';
import { leftovers, testEnv, vmName, waitForText, type TestEnv } from './testing.js';
import type { VmManager } from './manager.js';
import type { PlannedFdView } from './ports.js';
import { firmwareFor } from './facts.js';
import { run } from '../cli/index.js';

const SKIP = process.getuid?.() !== 0 ? 'needs root: the jailer switches uids and creates cgroups' : false;

/** A spec whose every file lives in env.dir (0700), the boot files readable by root only. */
function privateSpec(env: TestEnv, name: string, extra: Record<string, unknown> = {}): string {
  const guest = ensureTestGuest();
  chmodSync(env.dir, 0o700);
  for (const [from, to] of [[guest.kernel, 'vmlinuz'], [guest.initrd, 'initrd.gz']] as const) {
    copyFileSync(from, join(env.dir, to));
    chmodSync(join(env.dir, to), 0o600);
  }
  const file = join(env.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({
    apiVersion: 'warden/v1', name, memory: '256Mi', accel: 'tcg',
    boot: { kernel: 'vmlinuz', initrd: 'initrd.gz', cmdline: guest.cmdline },
    disks: [{ name: 'root', image: 'disk.qcow2', format: 'qcow2' }], ...extra,
  }));
  return file;
}

function setup(t: { after(fn: () => void | Promise<void>): void }): { env: TestEnv; m: VmManager } {
  const env = testEnv('warden-boot-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => {
    for (const name of await m.store.list()) await m.kill(name).catch(() => undefined);
    env.cleanup();
  });
  return { env, m };
}

const ACCMODE: Record<string, number> = { O_RDONLY: 0, O_WRONLY: 1, O_RDWR: 2 };

function accessMode(pid: number, fd: number): number {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1];
  return Number.parseInt(flags ?? '-1', 8) & 3;
}

/** The inode of each listening unix socket on this host, by the name it was bound under. */
function unixSocketInodes(): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8) out.set(Number(f[6]), f[7]!);
  }
  return out;
}

/** What a planned fd must look like in QEMU: [readlink pattern, access mode or null]. */
function expected(f: PlannedFdView): [RegExp | string, number | null] {
  switch (f.kind) {
    case 'file': return [realpathSync(f.path), ACCMODE[f.flags.find((x) => x in ACCMODE) ?? 'O_RDONLY']!];
    case 'log': return [/^pipe:\[\d+\]$/, ACCMODE['O_WRONLY']!];
    case 'unix-listen': return [/^socket:\[\d+\]$/, ACCMODE['O_RDWR']!];
    case 'sealed-copy': return [`/memfd:warden-${f.name} (deleted)`, ACCMODE['O_RDONLY']!]; // a read-only fd of the sealed copy
    case 'host-action': return [/^\/dev\/net\/tun$|^\/dev\/tap\d+$/, ACCMODE['O_RDWR']!];
    case 'socketpair': return [/^socket:\[\d+\]$/, ACCMODE['O_RDWR']!];
    case 'state-dir': return [realpathSync(f.path), ACCMODE['O_RDONLY']!];
  }
}

/**
 * Every planned fd is in QEMU with the planned kind, file and access mode: a passed fd at
 * its target; an fdset member wherever QEMU keeps it (QEMU dups -add-fd fds into the set and
 * closes the originals, then dups again when it opens /dev/fdset/N). A listening socket is
 * the one bound in the VM's directory, a sealed copy has its source's size. Besides these,
 * QEMU holds stdio and only anonymous kernel objects it made itself.
 */
function assertFdsAsPlanned(pid: number, fds: readonly PlannedFdView[], vmDir: string): void {
  const sockets = unixSocketInodes();
  const held = new Map(readdirSync(`/proc/${pid}/fd`).map(Number).filter((n) => n > 2).map((n) => [n, readlinkSync(`/proc/${pid}/fd/${n}`)] as const));
  const seen = new Set<number>();
  const fits = (f: PlannedFdView, n: number): boolean => {
    const [want, mode] = expected(f);
    const link = held.get(n) ?? '';
    return (typeof want === 'string' ? link === want : want.test(link)) && (mode === null || accessMode(pid, n) === mode);
  };
  for (const f of fds) {
    const inSet = 'fdset' in f && f.fdset !== undefined;
    const at = inSet ? [...held.keys()].filter((n) => fits(f, n)) : [f.target];
    assert.ok(at.length > 0 && at.every((n) => fits(f, n)), `planned fd ${f.target} (${f.name}, ${JSON.stringify(expected(f)[0].toString())}) in QEMU: ${at.map((n) => `${n} -> ${held.get(n)}`).join(', ') || 'none'}`);
    for (const n of at) seen.add(n);
    const link = held.get(at[0]!)!;
    if (f.kind === 'unix-listen') {
      const bound = sockets.get(Number(/\d+/.exec(link)![0]));
      assert.ok(bound?.startsWith(`${vmDir}/`), `fd ${f.target} (${f.name}) is a socket bound in ${vmDir}, got ${String(bound)}`);
    }
    if (f.kind === 'sealed-copy') assert.equal(statSync(`/proc/${pid}/fd/${f.target}`).size, statSync(f.path).size, `size of the copy of ${f.path}`);
  }
  const others = [...held].filter(([n, l]) => !seen.has(n) && !l.startsWith('anon_inode:'));
  assert.deepEqual(others, [], 'QEMU holds nothing but its planned fds, stdio and anonymous inodes');
}

/** Waits for the second occurrence of `text` (the first run's output stays in the log). */
async function waitForSecond(file: string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (readFileSync(file, 'latin1').split(text).length < 3) {
    if (Date.now() > deadline) assert.fail(`"${text}" did not appear a second time in ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface PlanFile { fds: PlannedFdView[]; argv: string[] }

test('BIOS: spec, disk, kernel and initrd (0600) in a 0700 directory boot by fd; warden plan --json is what start ran, and QEMU\'s fds are exactly its fds', { skip: SKIP, timeout: 180_000 }, async (t) => {
  const { env, m } = setup(t);
  const name = vmName('wdv-priv');
  const specFile = privateSpec(env, name);
  await m.create(specFile);
  const started = await m.start(name);
  const paths = m.store.paths(name);
  await waitForText(paths.serialLog, GUEST_READY_LINE, 90_000);
  const plan = JSON.parse(readFileSync(join(paths.dir, 'plan.json'), 'utf8')) as PlanFile;
  // `warden plan` gathers its facts where start does: the same plan, to the last fd and path.
  const io = { stdout: '', stderr: '', out(x: string) { io.stdout += `${x}\n`; }, err(x: string) { io.stderr += `${x}\n`; } };
  assert.equal(await run(['plan', specFile, '--json', '--state-dir', env.stateRoot], io), 0, io.stderr);
  assert.deepEqual(JSON.parse(io.stdout), JSON.parse(JSON.stringify(plan)), 'warden plan --json is the plan start ran');
  assert.ok(plan.argv.includes('/proc/self/fd/'.concat(String(plan.fds.find((f) => f.name === 'kernel')!.target))), '-kernel is the planned sealed copy');
  assert.ok(!JSON.stringify(plan.argv).includes(env.dir.concat('/vmlinuz')), 'QEMU is never given the kernel\'s path');
  assertFdsAsPlanned(started.record.run!.qemu.pid, plan.fds, paths.dir);
  const stopped = await m.stop(name, { timeoutS: 60 });
  assert.equal(stopped.lastExit?.reason, 'stopped');
  await m.delete(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});

test('UEFI: the busybox guest boots under OVMF from a 0700 directory; vars made at first start, kept across a restart, removed with the VM', {
  skip: SKIP || (firmwareFor({ firmware: 'uefi', secureBoot: false }) === undefined ? 'no OVMF (package ovmf)' : false), timeout: 400_000,
}, async (t) => {
  const { env, m } = setup(t);
  const name = vmName('wdv-uefi');
  await m.create(privateSpec(env, name, { firmware: 'uefi', disks: [{ name: 'root', image: 'disk.qcow2', format: 'qcow2', bootIndex: 3 }] }));
  const paths = m.store.paths(name);
  assert.equal(existsSync(paths.uefiVars), false, 'no vars before the first start');
  const first = await m.start(name);
  await waitForText(paths.serialLog, GUEST_READY_LINE, 180_000);
  const template = firmwareFor({ firmware: 'uefi', secureBoot: false })!.uefiVarsTemplate;
  const vars = statSync(paths.uefiVars);
  assert.equal(vars.size, statSync(template).size, 'the vars file is a copy of the template');
  assert.equal(vars.mode & 0o777, 0o600);
  const plan = JSON.parse(readFileSync(join(paths.dir, 'plan.json'), 'utf8')) as PlanFile;
  assertFdsAsPlanned(first.record.run!.qemu.pid, plan.fds, paths.dir);
  // bootIndex reaches QEMU's device (which hands the order to the firmware through fw_cfg bootorder).
  assert.equal(await m.qmp(name, 'qom-get', { path: '/machine/peripheral/disk-root', property: 'bootindex' }), 3);
  await m.stop(name, { timeoutS: 60 });

  await m.start(name);
  await waitForSecond(paths.serialLog, GUEST_READY_LINE, 180_000);
  assert.equal(statSync(paths.uefiVars).ino, vars.ino, 'the same vars file across a restart');
  await m.stop(name, { timeoutS: 60 });
  await m.delete(name);
  assert.equal(existsSync(paths.uefiVars), false, 'removed with the VM');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
