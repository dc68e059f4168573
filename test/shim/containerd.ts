/**
 * @module test/shim/containerd: Debian's real containerd for tests, on a private config:
 * root, state, sockets and ctr's FIFOs under one temp dir, never the system paths; `ctr`
 * against it; stopped (and everything under the dir removed) when the test ends.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

export async function privateContainerd(t: { after(fn: () => Promise<void> | void): void }): Promise<Containerd> {
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
    proc = spawn('containerd', ['--config', config, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'ignore'], detached: false });
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
  const destroy = async (): Promise<void> => {
    await stop();
    // Snapshot and task mounts left by a failed test must go before the directory can.
    const mounts = spawnSync('sh', ['-c', `grep -o " ${dir}[^ ]*" /proc/self/mountinfo | sort -r`], { encoding: 'utf8' }).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    rmSync(dir, { recursive: true, force: true });
  };
  t.after(destroy);
  await start();
  return {
    dir, address, start, stop, destroy,
    ctr(args, o = {}) {
      const r = spawnSync('ctr', ['-a', address, '-n', NS, ...args], { encoding: 'utf8', timeout: o.timeoutMs ?? 120_000 });
      if (r.status !== 0 && o.allowFail !== true) throw new Error(`ctr ${args.join(' ')} failed (${String(r.status)}): ${r.stderr}${r.stdout}`);
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    },
  };
}
