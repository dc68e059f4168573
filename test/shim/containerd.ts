/**
 * @module test/shim/containerd: Debian's real containerd for tests, on a private config:
 * root, state, sockets and ctr's FIFOs under one temp dir, never the system paths; `ctr`
 * against it; stopped (and everything under the dir removed) when the test ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Containerd {
  dir: string;
  address: string;
  /** Runs ctr against this containerd in namespace `ns`; throws with stderr on failure. */
  ctr(args: string[], o?: { allowFail?: boolean; timeoutMs?: number }): { code: number | null; stdout: string; stderr: string };
  /** Stops containerd (SIGTERM) and waits; tasks and shims stay. */
  stop(): Promise<void>;
  /** (Re)starts it on the same config. */
  start(): Promise<void>;
  /** Stops containerd, unmounts and removes everything under dir (after the caller removed its tasks). */
  destroy(): Promise<void>;
}

export const NS = 'wardentest';

/** Why containerd tests cannot run here, or undefined. */
export function containerdSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: containerd, mounts, the jailer';
  if (spawnSync('containerd', ['--version']).status !== 0) return 'containerd is not installed (apt-get install containerd)';
  if (!existsSync('/usr/share/gocode/src/github.com/containerd/containerd/runtime/v2/task/shim.proto')) return 'golang-github-containerd-containerd-dev is not installed';
  return undefined;
}

/** pids of this containerd's shim servers (found by its socket in their command line). */
export function shimServerPids(address: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    let cmd = '';
    try { cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1'); } catch { continue; }
    if (cmd.includes('shim/main.js') && cmd.includes(`\0${address}\0`) && cmd.endsWith('serve\0')) out.push(Number(p));
  }
  return out;
}

/**
 * A private containerd; the caller calls destroy() (after its own tasks are gone, or it kills
 * them). `binDir` is put first on its PATH (where containerd finds a runtime given by name).
 */
export async function privateContainerd(o: { binDir?: string } = {}): Promise<Containerd> {
  const dir = mkdtempSync(join(tmpdir(), 'wsh-'));
  const address = join(dir, 'c.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]', `  address = "${address}"`,
    '[ttrpc]', `  address = "${address}.ttrpc"`,
    '[debug]', `  address = "${dir}/debug.sock"`,
    '[plugins."io.containerd.monitor.v1.cgroups"]', '  no_prometheus = true',
    '',
  ].join('\n'));
  let proc: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const env = o.binDir === undefined ? process.env : { ...process.env, PATH: `${o.binDir}:${process.env['PATH'] ?? ''}` };
    proc = spawn('containerd', ['--config', config, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'ignore'], detached: false, env });
    for (let i = 0; i < 200; i++) {
      if (spawnSync('ctr', ['-a', address, 'version'], { encoding: 'utf8' }).status === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('private containerd did not come up within 20 s');
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    if (p === undefined || p.exitCode !== null) return;
    await new Promise<void>((r) => { p.once('exit', () => r()); p.kill('SIGTERM'); setTimeout(() => p.kill('SIGKILL'), 10_000).unref(); });
  };
  const ctr = (args: string[], o: { allowFail?: boolean; timeoutMs?: number } = {}): { code: number | null; stdout: string; stderr: string } => {
    const r = spawnSync('ctr', ['-a', address, '-n', NS, ...args], { encoding: 'utf8', timeout: o.timeoutMs ?? 120_000 });
    if (r.status !== 0 && o.allowFail !== true) throw new Error(`ctr ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}${r.stdout}`);
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const destroy = async (): Promise<void> => {
    // Tasks a failed test left: killed and removed through containerd while it runs.
    if (proc !== undefined && proc.exitCode === null) {
      for (const id of ctr(['task', 'ls', '-q'], { allowFail: true }).stdout.split('\n').filter(Boolean)) {
        ctr(['task', 'kill', '-s', 'SIGKILL', id], { allowFail: true });
        for (let i = 0; i < 50 && !ctr(['task', 'ls'], { allowFail: true }).stdout.match(new RegExp(`^${id}\\s+\\d+\\s+STOPPED`, 'm')); i++) await new Promise((r) => setTimeout(r, 200));
        ctr(['task', 'rm', '-f', id], { allowFail: true });
      }
      for (const id of ctr(['c', 'ls', '-q'], { allowFail: true }).stdout.split('\n').filter(Boolean)) ctr(['c', 'rm', id], { allowFail: true });
    }
    await stop();
    for (const pid of shimServerPids(address)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    // Snapshot and task mounts left by a failed test must go before the directory can.
    const mounts = spawnSync('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/self/mountinfo | sort -r`], { encoding: 'utf8' }).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await start();
  } catch (err) {
    await destroy();
    throw err;
  }
  return { dir, address, start, stop, destroy, ctr };
}
