/**
 * The warden shim under Debian's real containerd and ctr (private config, root, state and
 * sockets under a temp dir): a VM image built from a directory and imported, run detached,
 * its console in the task log, QEMU confined as under `warden start`, pause/resume, ACPI
 * stop and SIGKILL with their exit events, removal leaving nothing; a containerd restart
 * keeping the task; a killed shim cleaned up through `delete`; two VMs in two network
 * namespaces pinging each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../../src/sys/index.js';
import { GUEST_READY_LINE, hostPathsOpen, leftovers, outsideView, repoRoot, waitForText } from '../../src/vm/index.js';
import { shimPaths, vmNameFor } from '../../src/shim/index.js';
import { containerdSkipReason, privateContainerd, shimServerPids, NS, type Containerd } from './containerd.js';
import { importImage, vmRootfs } from './image.js';

const SHIM = join(repoRoot(), 'bin', 'containerd-shim-warden-v1');
const IMAGE = 'warden.test/vm:1';
const skip = containerdSkipReason();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface World {
  c: Containerd;
  stateRoot: string;
  log(id: string): string;
  run(id: string, extra?: string[]): void;
  status(id: string): string | undefined;
  pid(id: string): number;
  events(): string;
  restartEvents(): void;
  /** The events seen and the shim's log, for a failure message. */
  diag(): string;
}

async function world(t: { after(fn: () => Promise<void>): void }, extraCleanup: () => void = () => undefined): Promise<World> {
  // containerd finds io.containerd.warden.v1 as containerd-shim-warden-v1 on its PATH, as on a real node.
  const bin = mkdtempSync(join(tmpdir(), 'wsh-bin-'));
  symlinkSync(SHIM, join(bin, 'containerd-shim-warden-v1'));
  const c = await privateContainerd({ binDir: bin });
  const rootfs = mkdtempSync(join(tmpdir(), 'wsh-vm-'));
  let ev: ChildProcess | undefined;
  let evOut = '';
  const restartEvents = (): void => {
    ev?.kill('SIGKILL');
    ev = spawn('ctr', ['-a', c.address, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    ev.stdout!.on('data', (b: Buffer) => { evOut += b.toString(); });
  };
  t.after(async () => {
    ev?.kill('SIGKILL');
    await c.destroy();
    extraCleanup();
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(bin, { recursive: true, force: true });
  });
  importImage((a) => c.ctr(a), vmRootfs(rootfs), IMAGE);
  restartEvents();
  const status = (id: string): string | undefined => new RegExp(`^${id}\\s+\\d+\\s+(\\S+)`, 'm').exec(c.ctr(['task', 'ls']).stdout)?.[1];
  return {
    c, stateRoot: shimPaths(c.address).stateRoot, events: () => evOut, restartEvents, status,
    diag: () => `events:\n${evOut}\nshim log:\n${(() => { try { return readFileSync(shimPaths(c.address).log, 'utf8'); } catch { return '(none)'; } })()}`,
    log: (id) => join(c.dir, `${id}.log`),
    run(id, extra = []) { c.ctr(['run', '-d', '--runtime', SHIM, '--log-uri', `file://${join(c.dir, `${id}.log`)}`, ...extra, IMAGE, id]); },
    pid: (id) => Number(new RegExp(`^${id}\\s+(\\d+)`, 'm').exec(c.ctr(['task', 'ls']).stdout)?.[1]),
  };
}

async function until(what: string, fn: () => boolean, timeoutMs: number, context: () => string = () => ''): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${context() ? `\n${context()}` : ''}`);
    await sleep(200);
  }
}

/**
 * The VM's phase as its record says (the daemon in the shim holds the QMP session, so a
 * second monitor client would wait): pause and resume write it only after QMP's
 * query-status confirmed the vCPUs' state.
 */
function recordPhase(stateRoot: string, vm: string): string {
  return (JSON.parse(readFileSync(join(stateRoot, 'vms', vm, 'vm.json'), 'utf8')) as { phase: string }).phase;
}

/** Everything a removed task could leave: warden's list, plus its record and the bundle's rootfs mount. */
function shimLeftovers(w: World, id: string): string[] {
  const vm = vmNameFor(NS, id);
  const out = leftovers(vm, w.stateRoot);
  if (existsSync(join(w.stateRoot, 'vms', vm))) out.push(`VM record: ${vm}`);
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(`/${NS}/${id}/rootfs`));
  out.push(...mounts.map((l) => `mount: ${l.split(' ')[4]}`));
  return out;
}

test('ctr run -d: RUNNING, ready line in the task log, confined QEMU, metrics, pause/resume, SIGTERM = ACPI poweroff with /tasks/exit, rm leaves nothing; ctr run --rm: console on ctr, exit status, nothing left', { skip, timeout: 240_000 }, async (t) => {
  const w = await world(t);
  const id = `vma-${process.pid}`;
  const vm = vmNameFor(NS, id);
  w.run(id);
  assert.equal(w.status(id), 'RUNNING');
  await waitForText(w.log(id), GUEST_READY_LINE, 90_000);

  const sp = shimPaths(w.c.address);
  assert.equal(statSync(sp.socket).mode & 0o777, 0o600, 'only root reaches the shim (it runs VMs as root)');
  assert.equal(statSync(sp.dir).mode & 0o777, 0o700);
  const pid = w.pid(id);
  const view = await outsideView(new NodeFs(), pid);
  assert.ok(view !== null, `QEMU ${pid} is visible`);
  assert.notEqual(view.uid, 0, 'QEMU runs as its own uid');
  assert.equal(view.capEff, '0000000000000000');
  assert.equal(view.noNewPrivs, true);
  assert.equal(view.seccomp, 2);
  for (const ns of ['mnt', 'pid', 'net']) assert.ok(view.ownNamespaces.includes(ns), `own ${ns} namespace (has ${view.ownNamespaces.join(',')})`);
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  assert.ok(cmdline.includes('/dev/fdset/'), 'disks reach QEMU as fds');
  assert.ok(!cmdline.includes('.qcow2'), 'QEMU is given no image path');
  const overlay = hostPathsOpen(view).filter((p) => p.endsWith('disk-root.qcow2'));
  assert.ok(overlay.length >= 1, 'QEMU holds the overlay in the bundle\'s work dir, opened for it');
  assert.ok(hostPathsOpen(view).some((p) => p.endsWith('/disk/root.qcow2')), 'and the image from the rootfs as its backing layer');

  const metrics = w.c.ctr(['task', 'metrics', id]).stdout;
  assert.match(metrics, /memory\.usage_in_bytes\s+[1-9]\d*/, `ctr decodes the jail's cgroup counters:\n${metrics}`);

  w.c.ctr(['task', 'pause', id]);
  assert.equal(w.status(id), 'PAUSED');
  assert.equal(recordPhase(w.stateRoot, vm), 'paused');
  w.c.ctr(['task', 'resume', id]);
  assert.equal(w.status(id), 'RUNNING');
  assert.equal(recordPhase(w.stateRoot, vm), 'running');

  w.c.ctr(['task', 'kill', '-s', 'SIGTERM', id]);
  await until('the guest to power off (ACPI)', () => w.status(id) === 'STOPPED', 90_000);
  await until('/tasks/exit', () => w.events().split('\n').some((l) => l.includes('/tasks/exit') && l.includes(id)), 10_000, () => w.diag());
  const exit = w.events().split('\n').find((l) => l.includes('/tasks/exit') && l.includes(id)) ?? '';
  assert.ok(!exit.includes('exit_status'), `the poweroff is exit status 0 (omitted): ${exit}`);
  assert.ok(w.events().includes('/tasks/paused') && w.events().includes('/tasks/resumed'), 'pause and resume events');
  w.c.ctr(['task', 'rm', id]);
  w.c.ctr(['c', 'rm', id]);
  assert.deepEqual(shimLeftovers(w, id), []);

  // Attached (`ctr run --rm`): the console reaches ctr through its FIFOs, Wait returns the exit, ctr exits with it and removes all.
  const rm = `vmrm-${process.pid}`;
  const p = spawn('ctr', ['-a', w.c.address, '-n', NS, 'run', '--rm', '--fifo-dir', join(w.c.dir, 'fifo'), '--runtime', SHIM, IMAGE, rm], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  p.stdout!.on('data', (b: Buffer) => { out += b.toString('latin1'); });
  const code = new Promise<number | null>((r) => p.on('exit', (c) => r(c)));
  t.after(() => { p.kill('SIGKILL'); });
  await until('the ready line on ctr\'s stdout', () => out.includes(GUEST_READY_LINE), 90_000, () => out.slice(-500));
  w.c.ctr(['task', 'kill', '-s', 'SIGKILL', rm]);
  assert.equal(await code, 137, 'ctr run exits with the VM\'s status');
  assert.ok(!w.c.ctr(['c', 'ls', '-q']).stdout.includes(rm), '--rm removed the container');
  assert.deepEqual(shimLeftovers(w, rm), []);
});

test('runtime by name; SIGKILL gives exit 137; a containerd restart keeps a task; SIGKILL of the shim -> containerd runs delete and nothing is left', { skip, timeout: 300_000 }, async (t) => {
  const w = await world(t);
  const [a, b] = [`vmk-${process.pid}`, `vmr-${process.pid}`];
  // By runtime name this time (a containerd config `runtimes` entry names the same type).
  w.c.ctr(['run', '-d', '--runtime', 'io.containerd.warden.v1', IMAGE, a]);
  assert.equal(w.status(a), 'RUNNING');
  w.c.ctr(['task', 'kill', '-s', 'SIGKILL', a]);
  await until('the killed task to stop', () => w.status(a) === 'STOPPED', 30_000);
  await until('/tasks/exit with 137', () => w.events().split('\n').some((l) => l.includes('/tasks/exit') && l.includes(a) && l.includes('"exit_status":137')), 10_000, () => w.diag());
  w.c.ctr(['task', 'rm', a]);
  w.c.ctr(['c', 'rm', a]);
  assert.deepEqual(shimLeftovers(w, a), []);

  w.run(b);
  await waitForText(w.log(b), GUEST_READY_LINE, 90_000);
  const pid = w.pid(b);
  await w.c.stop();
  await w.c.start();
  w.restartEvents();
  assert.equal(w.status(b), 'RUNNING', 'the task survived the containerd restart');
  assert.equal(w.pid(b), pid);
  w.c.ctr(['task', 'pause', b]);
  assert.equal(w.status(b), 'PAUSED', 'and is served by the same shim afterwards');
  w.c.ctr(['task', 'resume', b]);

  const shims = shimServerPids(w.c.address);
  assert.equal(shims.length, 1, 'one shim server serves this containerd');
  process.kill(shims[0]!, 'SIGKILL');
  await until('containerd to clean up the task of the dead shim', () => shimLeftovers(w, b).length === 0, 60_000);
  await until('the task to be gone or stopped', () => w.status(b) === undefined || w.status(b) === 'STOPPED', 30_000);
  w.c.ctr(['task', 'rm', b], { allowFail: true });
  w.c.ctr(['c', 'rm', b]);
  assert.deepEqual(shimLeftovers(w, b), []);
});

test('two VMs in two network namespaces (CNI-style, --with-ns) ping each other through their pods\' interfaces', { skip, timeout: 300_000 }, async (t) => {
  const tag = String(process.pid);
  const [nsA, nsB] = [`wsa${tag}`, `wsb${tag}`];
  const ip = (args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr}`);
  };
  const w = await world(t, () => { for (const ns of [nsA, nsB]) spawnSync('ip', ['netns', 'del', ns]); });
  // The "CNI" here: a veth pair, one end as eth0 in each pod netns.
  ip(['netns', 'add', nsA]);
  ip(['netns', 'add', nsB]);
  ip(['link', 'add', `wsva${tag}`.slice(0, 15), 'type', 'veth', 'peer', 'name', `wsvb${tag}`.slice(0, 15)]);
  ip(['link', 'set', `wsva${tag}`.slice(0, 15), 'netns', nsA]);
  ip(['link', 'set', `wsvb${tag}`.slice(0, 15), 'netns', nsB]);
  ip(['-n', nsA, 'link', 'set', `wsva${tag}`.slice(0, 15), 'name', 'eth0', 'up']);
  ip(['-n', nsB, 'link', 'set', `wsvb${tag}`.slice(0, 15), 'name', 'eth0', 'up']);
  const spec = (me: string, peer: string): string => JSON.stringify({
    apiVersion: 'warden/v1', name: 'pod-vm', memory: '256Mi', accel: 'tcg',
    boot: { kernel: '/boot/vmlinuz', initrd: '/boot/initramfs.gz', cmdline: `console=ttyS0 quiet panic=-1 warden.ip=${me}/24 warden.ping=${peer}` },
    networks: [{ name: 'net0', type: 'bridge', bridge: 'pod' }],
  });
  const [a, b] = [`vmna-${tag}`, `vmnb-${tag}`];
  w.run(a, ['--with-ns', `network:/var/run/netns/${nsA}`, '--annotation', `io.warden.spec=${spec('10.77.0.1', '10.77.0.2')}`]);
  // B's netns by another path (a bind mount, as a runtime may pin it): the TAP moves in through a process inside it.
  const pinned = join(w.c.dir, 'netns-b');
  writeFileSync(pinned, '');
  assert.equal(spawnSync('mount', ['--bind', `/var/run/netns/${nsB}`, pinned]).status, 0);
  w.run(b, ['--with-ns', `network:${pinned}`, '--annotation', `io.warden.spec=${spec('10.77.0.2', '10.77.0.1')}`]);
  await waitForText(w.log(a), 'WARDEN-PING-OK 10.77.0.2', 120_000);
  await waitForText(w.log(b), 'WARDEN-PING-OK 10.77.0.1', 60_000);
  const links = spawnSync('ip', ['-n', nsA, '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  assert.match(links, /master wp/, 'the pod interface and the VM\'s TAP are bridged inside the pod netns');
  for (const id of [a, b]) {
    w.c.ctr(['task', 'kill', '-s', 'SIGKILL', id]);
    await until(`${id} to stop`, () => w.status(id) === 'STOPPED', 30_000);
    w.c.ctr(['task', 'rm', id]);
    w.c.ctr(['c', 'rm', id]);
    assert.deepEqual(shimLeftovers(w, id), []);
  }
  const left = spawnSync('ip', ['-n', nsA, '-o', 'link', 'show'], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]?.trim().split('@')[0]);
  assert.deepEqual(left.sort(), ['eth0', 'lo'], 'no TAP or bridge left in the pod netns');
});

test('a bundle without a VM spec is refused by name and leaves nothing; a CRI pod sandbox is a placeholder process in the pod netns, ended by kill or by delete after the shim died', { skip, timeout: 120_000 }, async (t) => {
  const ns = `wss${process.pid}`;
  const w = await world(t, () => { spawnSync('ip', ['netns', 'del', ns]); });
  const empty = mkdtempSync(join(tmpdir(), 'wsh-empty-'));
  t.after(() => rmSync(empty, { recursive: true, force: true }));
  const bad = `vmbad-${process.pid}`;
  const r = w.c.ctr(['run', '-d', '--runtime', SHIM, '--rootfs', empty, bad], { allowFail: true });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no VM spec: \/warden\/vm\.yaml is not readable in the rootfs/);
  w.c.ctr(['c', 'rm', bad]);
  assert.deepEqual(shimLeftovers(w, bad), []);

  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  // ctr's --rootfs is a switch: the directory takes the image's place among the arguments.
  const sandbox = ['--annotation', 'io.kubernetes.cri.container-type=sandbox', '--with-ns', `network:/var/run/netns/${ns}`, '--rootfs', empty];
  const [s1, s2] = [`sbx1-${process.pid}`, `sbx2-${process.pid}`];
  w.c.ctr(['run', '-d', '--runtime', SHIM, ...sandbox, s1]);
  assert.equal(w.status(s1), 'RUNNING');
  const pid = w.pid(s1);
  assert.match(readFileSync(`/proc/${pid}/cmdline`, 'latin1'), /^sleep\0infinity/);
  const inode = (p: string): string => spawnSync('stat', ['-L', '-c', '%i', p], { encoding: 'utf8' }).stdout.trim();
  assert.equal(inode(`/proc/${pid}/ns/net`), inode(`/var/run/netns/${ns}`), 'the placeholder holds the pod netns');
  w.c.ctr(['task', 'kill', s1]);
  await until('the sandbox to stop', () => w.status(s1) === 'STOPPED', 20_000);
  await until('its /tasks/exit (143)', () => w.events().split('\n').some((l) => l.includes('/tasks/exit') && l.includes(s1) && l.includes('"exit_status":143')), 10_000, () => w.diag());
  w.c.ctr(['task', 'rm', s1]);
  w.c.ctr(['c', 'rm', s1]);

  w.c.ctr(['run', '-d', '--runtime', SHIM, ...sandbox, s2]);
  const pid2 = w.pid(s2);
  for (const shim of shimServerPids(w.c.address)) process.kill(shim, 'SIGKILL');
  await until('delete to end the placeholder of the dead shim', () => !existsSync(`/proc/${pid2}/cmdline`) || readFileSync(`/proc/${pid2}/cmdline`, 'latin1') === '', 30_000);
  await until('the sandbox task to be gone or stopped', () => w.status(s2) === undefined || w.status(s2) === 'STOPPED', 30_000);
  w.c.ctr(['task', 'rm', s2], { allowFail: true });
  w.c.ctr(['c', 'rm', s2]);
  assert.equal(existsSync(join(shimPaths(w.c.address).dir, 'sandboxes', `${vmNameFor(NS, s2)}.json`)), false, 'no placeholder record left');
});
