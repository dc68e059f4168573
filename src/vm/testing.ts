/**
 * @module vm/testing: helpers for the lifecycle tests and benchmarks: a temporary state
 * root and spec around the test guest, waiting for console output, and a check that a VM
 * left nothing behind on the host.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { ensureTestGuest } from './guest.js';
import { hostWideName } from '../plan/index.js';
import { stateRootScope } from './facts.js';
import { jailerConfig } from './jailer.js';

export interface TestVmSpec {
  name: string;
  /** Extra kernel command line (warden.ip=... ). */
  cmdline?: string;
  networks?: Array<Record<string, unknown>>;
  /** Path of an existing disk image (qcow2) to use instead of a fresh overlay. */
  disk?: string;
  memory?: string;
  /** serial.logMax of the spec (default: the spec's default). */
  serialLogMax?: string;
  /** More top-level spec fields (tpm: true ...). */
  extra?: Record<string, unknown>;
}

export interface TestEnv {
  dir: string;
  stateRoot: string;
  /** A qcow2 base image and an overlay over it, created with qemu-img. */
  base: string;
  overlay: string;
  specFile(s: TestVmSpec): string;
  cleanup(): void;
}

export function testEnv(prefix = 'warden-vm-e2e-'): TestEnv {
  const guest = ensureTestGuest();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const base = join(dir, 'base.qcow2');
  const overlay = join(dir, 'disk.qcow2');
  const img = (args: string[]): void => {
    const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')} failed: ${r.stderr}`);
  };
  img(['create', '-q', '-f', 'qcow2', base, '64M']);
  img(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', overlay]);
  return {
    dir, stateRoot: join(dir, 'state'), base, overlay,
    specFile(s) {
      const spec = {
        apiVersion: 'warden/v1', name: s.name, memory: s.memory ?? '256Mi', accel: 'tcg',
        boot: { kernel: guest.kernel, initrd: guest.initrd, cmdline: `${guest.cmdline}${s.cmdline ? ` ${s.cmdline}` : ''}` },
        disks: [{ name: 'root', image: s.disk ?? overlay, format: 'qcow2' }],
        networks: s.networks ?? [],
        ...(s.serialLogMax === undefined ? {} : { serial: { logMax: s.serialLogMax } }),
        ...s.extra,
      };
      const file = join(dir, `${s.name}.json`);
      writeFileSync(file, JSON.stringify(spec, null, 2));
      return file;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * A VM name for a test: `tag` plus this process's pid. VM names reach host-wide places (the
 * cgroup `warden/NAME` in every hierarchy, the jailer's lease store under /var/lib/warden),
 * so two checkouts running the suite at once on one host must not share them.
 */
export function vmName(tag: string): string {
  return `${tag}-${process.pid}`;
}

/** Waits until `file` contains `text`; rejects with the file's tail after `timeoutMs`. */
export async function waitForText(file: string, text: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = existsSync(file) ? readFileSync(file, 'latin1') : '';
    if (s.includes(text)) return s;
    if (Date.now() > deadline) throw new Error(`"${text}" did not appear in ${file} within ${timeoutMs} ms; it ends with:\n${s.slice(-1500)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The host TAP names VM `name`'s stored plan.json asks for (its `tap` host actions). */
export function planTaps(vmDir: string): string[] {
  const plan = JSON.parse(readFileSync(join(vmDir, 'plan.json'), 'utf8')) as { hostActions: Array<{ kind: string; ifname?: string }> };
  return plan.hostActions.flatMap((a) => (a.kind === 'tap' && a.ifname ? [a.ifname] : []));
}

/** Everything of VM `name` that could outlive it on the host; empty when it left nothing. */
export function leftovers(name: string, stateRoot: string, ifnames: readonly string[] = []): string[] {
  const found: string[] = [];
  // Jail, cgroup and lease carry the state root's id (plan/scope); the bare name is checked too.
  const hostNames = [...new Set([name, hostWideName(name, stateRootScope(stateRoot))])];
  for (const p of processesWith(`guest=${name},`, hostNames)) found.push(`process: ${p}`);
  for (const h of safeReaddir('/sys/fs/cgroup')) {
    for (const parent of ['warden', '']) {
      for (const n of hostNames) {
        const p = join('/sys/fs/cgroup', h, parent, n);
        if (existsSync(p)) found.push(`cgroup: ${p}`);
      }
    }
  }
  const leases = join(jailerConfig().stateDir, 'leases.json');
  const leaseText = existsSync(leases) ? readFileSync(leases, 'utf8') : '';
  for (const n of hostNames) if (leaseText.includes(`"${n}"`)) found.push(`lease: ${n} in ${leases}`);
  const dir = join(stateRoot, 'vms', name);
  for (const f of ['qmp.sock', 'serial.sock']) if (existsSync(join(dir, f))) found.push(`socket: ${join(dir, f)}`);
  for (const ifname of ifnames) if (existsSync(`/sys/class/net/${ifname}`)) found.push(`link: ${ifname}`);
  for (const [pid, path] of holdersUnder(dir)) found.push(`process ${pid} holds ${path}`);
  for (const fd of safeReaddir('/proc/self/fd')) {
    let target = '';
    try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    if (target.startsWith(stateRoot) || target.startsWith(join(stateRoot, '..'))) found.push(`fd ${fd} of this process: ${target}`);
  }
  return found;
}

/** [pid, path] of every other process holding a file under `dir` open (QEMU, the log writer ...). */
export function holdersUnder(dir: string): Array<[number, string]> {
  const out: Array<[number, string]> = [];
  for (const p of safeReaddir('/proc')) {
    if (!/^[0-9]+$/.test(p) || Number(p) === process.pid) continue;
    for (const fd of safeReaddir(`/proc/${p}/fd`)) {
      let target = '';
      try { target = readlinkSync(`/proc/${p}/fd/${fd}`); } catch { continue; }
      if (target.startsWith(`${dir}/`)) out.push([Number(p), target]);
    }
  }
  return out;
}

/**
 * "PID cmdline" of every process whose command line contains `needle`, read from /proc
 * (pgrep is in procps, which scripts/setup.sh does not install). A zombie has an empty
 * command line, so an exited QEMU not yet reaped does not count.
 */
function processesWith(needle: string, hostNames: readonly string[]): string[] {
  const out: string[] = [];
  for (const pid of safeReaddir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    let cmdline = '';
    try { cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1'); } catch { continue; }
    if (cmdline.includes(needle) && !inOtherJail(pid, hostNames)) out.push(`${pid} ${cmdline.split('\0').join(' ').trim()}`);
  }
  return out;
}

/** True when the process sits in a warden cgroup none of `hostNames` names: a same-named VM of another state root. */
function inOtherJail(pid: string, hostNames: readonly string[]): boolean {
  let cg = '';
  try { cg = readFileSync(`/proc/${pid}/cgroup`, 'utf8'); } catch { return false; }
  const leaves = [...cg.matchAll(/\/warden\/([a-z0-9-]+)/g)].map((m) => m[1]!);
  return leaves.length > 0 && !leaves.some((l) => hostNames.includes(l));
}

function safeReaddir(p: string): string[] {
  try { return readdirSync(p); } catch { return []; }
}

/** Every file process `pid` holds open (the targets of /proc/PID/fd). */
export function qemuFiles(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).flatMap((fd) => { try { return [readlinkSync(`/proc/${pid}/fd/${fd}`)]; } catch { return []; } });
}

/** A connection to a VM's serial console socket, closed after the test. */
export async function openConsole(path: string, t: { after(fn: () => void): void }): Promise<Socket> {
  const sock = createConnection({ path });
  await new Promise((r) => sock.once('connect', r));
  sock.on('error', () => undefined);
  t.after(() => sock.destroy());
  return sock;
}

/** Runs `cmd` on the guest's console and returns what it printed (newlines as commas) between markers unique to `tag`. */
export async function guestSays(sock: Socket, log: string, tag: string, cmd: string, timeoutMs = 120_000): Promise<string> {
  sock.write(`echo OUT${tag}''-$(${cmd} 2>&1 | tr '\\n' ,)-END\n`); // '' keeps the echoed command line from matching
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = new RegExp(`OUT${tag}-(.*?)-END`).exec(readFileSync(log, 'latin1'));
    if (m !== null) return m[1]!;
    if (Date.now() > deadline) throw new Error(`no answer ${tag} to ${cmd} on the console`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
