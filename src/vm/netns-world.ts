/**
 * @module vm/netns-world: the test side of the lifecycle network tests: a test-made netns
 * and warden state root in which every warden command runs in a child node process
 * (netns-scenarios), with teardown that kills every VM and deletes the netns, also on failure.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { createNetns, inNetns, nsRun } from '../../test/net/netns.js';
import type { ScenarioArgs, StartedVm } from './netns-scenarios.js';
import { testEnv, type TestEnv } from './testing.js';

const SCENARIOS = fileURLToPath(new URL('./netns-scenarios.js', import.meta.url));

export interface NetnsWorld {
  env: TestEnv;
  ns: string;
  /** Scenario arguments every run gets (the state root; tests may add e.g. ovsDb). */
  args: ScenarioArgs;
  /** Runs a netns-scenarios function (one warden command) inside the netns. */
  run<T>(fn: string, extra: Record<string, unknown>, timeoutMs: number): Promise<T>;
  /** Network devices of the netns (seen through a fresh /sys of the netns). */
  links(): string[];
  /** A fresh qcow2 overlay over the shared base (each VM needs its own writable disk). */
  overlay(tag: string): string;
  /** `warden create` + `warden start` of each spec inside the netns; remembers the QEMU pids. */
  startVms(specs: string[], extra?: Record<string, unknown>): Promise<StartedVm[]>;
}

/** Is `pid` still the QEMU of VM `name` (not a reused pid)? */
export function isQemuOf(pid: number, name: string): boolean {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(`guest=${name},`); } catch { return false; }
}

/**
 * Netns `ns` and a state root in /tmp/<prefix>*. The children enter only the netns
 * (nsenter --net, keepMounts): `ip netns exec` would remount /sys without the cgroup
 * hierarchy the jailer needs. Teardown, in order: `warden kill` of every VM while the
 * netns (and whatever the test added after this call) still exists, SIGKILL of any QEMU
 * left (by pid), then the netns with all its devices, then the files.
 */
export function netnsWorld(t: TestContext, ns: string, prefix: string): NetnsWorld {
  const env = testEnv(prefix);
  const args: ScenarioArgs = { stateRoot: env.stateRoot };
  const pids = new Map<number, string>();
  const run = <T>(fn: string, extra: Record<string, unknown>, timeoutMs: number): Promise<T> =>
    inNetns<T>(ns, `${SCENARIOS}#${fn}`, { ...args, ...extra }, timeoutMs, { keepMounts: true });
  t.after(async () => {
    await run('killAll', {}, 120_000).catch((e: unknown) => console.error(`teardown: warden kill failed: ${String(e)}`));
    for (const [pid, name] of pids) if (isQemuOf(pid, name)) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    env.cleanup();
  });
  createNetns(t, ns);
  return {
    env, ns, args, run,
    links: () => nsRun(ns, ['ls', '/sys/class/net']).stdout.split(/\s+/).filter((l) => l !== ''),
    overlay(tag) {
      const p = join(env.dir, `${tag}.qcow2`);
      const r = spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', env.base, '-F', 'qcow2', p], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`qemu-img create ${p}: ${r.stderr}`);
      return p;
    },
    async startVms(specs, extra = {}) {
      const vms = await run<StartedVm[]>('createAndStart', { specs, ...extra }, 300_000);
      for (const v of vms) pids.set(v.pid, v.name);
      return vms;
    },
  };
}
