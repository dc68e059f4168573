/** @module test/jail/helpers: temp jailer configs in the test uid range, QEMU-like probe specs, and a run-and-clean-up harness. */
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { defaultJailerConfig, launchJail, teardownJail, type JailerConfig, type JailExit, type JailHandle, type JailSpec } from '../../src/jail/index.js';

/** The engineer's test uid range is 231072-231199; each test file takes a disjoint slice. */
export function tempConfig(t: TestContext, first: number, count: number): JailerConfig {
  const dir = mkdtempSync('/tmp/warden-jail-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return defaultJailerConfig({ stateDir: join(dir, 'state'), runtimeDir: join(dir, 'run'), uidRange: { first, count } });
}

let counter = 0;
/** A unique jail name with the test prefix. */
export function jailName(tag: string): string {
  return `warden-test-jail-${tag}-${process.pid}-${counter++}`;
}

/** A spec shaped like a QEMU jail (read-only /usr and the /bin, /lib symlinks) running a busybox shell script. */
export function probeSpec(name: string, script: string, extra: Partial<JailSpec> = {}): JailSpec {
  return {
    name,
    identity: { lease: true },
    network: { mode: 'none' },
    mounts: [
      { type: 'ro-bind', source: '/usr', target: '/usr' },
      { type: 'symlink', linkTarget: 'usr/bin', path: '/bin' },
      { type: 'symlink', linkTarget: 'usr/lib', path: '/lib' },
      { type: 'symlink', linkTarget: 'usr/lib64', path: '/lib64' },
    ],
    devices: [],
    fds: [],
    cgroup: { name, pids: 64, memoryBytes: 256 << 20 },
    env: { PATH: '/usr/bin:/bin' },
    cwd: '/',
    argv: ['/usr/bin/busybox', 'sh', '-c', script],
    ...extra,
  };
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Asserts nothing of the jail is left: no cgroup leaf, no process, no lease. */
export async function assertGone(config: JailerConfig, handle: Pick<JailHandle, 'name' | 'pid' | 'cgroupPaths'>): Promise<void> {
  for (const leaf of handle.cgroupPaths) assert.ok(!existsSync(leaf), `cgroup ${leaf} removed`);
  assert.ok(!existsSync(`/proc/${handle.pid}/stat`) || readFileSync(`/proc/${handle.pid}/stat`, 'utf8').split(' ')[2] === 'Z', `pid ${handle.pid} gone`);
  const leases = join(config.stateDir, 'leases.json');
  if (existsSync(leases)) assert.equal(JSON.parse(readFileSync(leases, 'utf8')).jails[handle.name], undefined, 'lease released');
  assert.ok(!existsSync(join(config.runtimeDir, '.pids', `${handle.name}.json`)), 'pids file removed');
}

export interface ProbeResult { exit: JailExit; out: string; handle: JailHandle }

/**
 * Launches the spec with stdout+stderr to a file, waits (bounded), reads the output, then
 * lets `inspect` look at the host side before teardown; teardown always runs.
 */
export async function runProbe(t: TestContext, config: JailerConfig, spec: JailSpec, options: {
  fds?: Map<string, number>; inspect?: (h: JailHandle) => Promise<void> | void; timeoutMs?: number;
} = {}): Promise<ProbeResult> {
  const outFile = join(config.stateDir, '..', `${spec.name}.out`);
  const outFd = openSync(outFile, 'w');
  t.after(async () => { await teardownJail(spec.name, config); });
  let handle: JailHandle;
  try {
    handle = await launchJail(spec, { fds: options.fds ?? new Map(), stdio: { stdout: outFd, stderr: outFd }, config });
  } finally { closeSync(outFd); }
  const timer = setTimeout(() => handle.kill('SIGKILL'), options.timeoutMs ?? 20000);
  try {
    const exit = await handle.wait({ pollMs: 10 });
    await options.inspect?.(handle);
    return { exit, out: readFileSync(outFile, 'utf8'), handle };
  } finally {
    clearTimeout(timer);
    await teardownJail(spec.name, config);
    await assertGone(config, handle);
  }
}
