/** @module bench/jail: what confinement costs: a jailed start/exit against an unjailed one and the bare setpriv+bwrap chain. */
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildJailArgv, checkJailSpec, defaultJailerConfig, launchJail, LeaseStore, reachableHelper, teardownJail, type JailSpec,
} from '../src/jail/index.js';
import { interleavedMedians, le, median, medianMs, type Benchmark, type BenchRow } from './lib.js';
import { jailParentCgroup } from './in-cgroup.js';

/**
 * A uid range of this run's own (a concurrent run, CI's say, must not find its uids taken):
 * 32 ids from 240000 up, by pid. 32, because the lease skips an id while any process of it
 * lives, and the last launch's processes may still be exiting when the next one leases.
 */
const UIDS = { first: 240000 + (process.pid % 300) * 32, count: 32 };
const BARE_UID = UIDS.first + 31;

function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    p.on('error', reject);
    p.on('close', () => resolve());
  });
}

function spec(name: string): JailSpec {
  return {
    name, identity: { lease: true }, network: { mode: 'none' },
    mounts: [{ type: 'ro-bind', source: '/usr', target: '/usr' }, { type: 'symlink', linkTarget: 'usr/lib', path: '/lib' },
      { type: 'symlink', linkTarget: 'usr/lib64', path: '/lib64' }, { type: 'symlink', linkTarget: 'usr/bin', path: '/bin' }],
    devices: [], fds: [], cgroup: { name, memoryBytes: 256 << 20, pids: 64, cpu: { quotaUs: 100000, periodUs: 100000 } },
    env: {}, cwd: '/', argv: ['/usr/bin/true'],
  };
}

/** The jail's own chain (exec helper → setpriv → bwrap with every flag the spec implies), spawned bare: no lease, cgroup, status file or pid checks; the gate opened at once. */
function ownChainBare(config: ReturnType<typeof defaultJailerConfig>): Promise<void> {
  // The helper as launchJail binds it: in a checkout under /root it is out of the jail uid's reach.
  const argv = buildJailArgv(spec('warden-test-jail-bare'), { uid: BARE_UID, gid: BARE_UID, groups: [], helperPath: reachableHelper(config.helperPath),
    setprivPath: config.setprivPath, bwrapPath: config.bwrapPath, cgroupProcs: [], statusFd: 3, gateFd: 4, stderrFd: 5, landlockRequired: false });
  return new Promise((resolve, reject) => {
    const status = openSync('/dev/null', 'w');
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore', status, 'pipe', status], env: {} });
    closeSync(status);
    const gate = p.stdio[4] as Duplex;
    gate.on('error', () => undefined);
    gate.write('g');
    p.on('error', reject);
    p.on('exit', (code) => { gate.destroy(); if (code === 0) resolve(); else reject(new Error(`the jail's own chain, spawned bare, exited ${code}`)); });
  });
}

const BARE_CHAIN = ['/usr/bin/setpriv', `--reuid=${BARE_UID}`, `--regid=${BARE_UID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
  '/usr/bin/bwrap', '--unshare-all', '--new-session', '--ro-bind', '/usr', '/usr', '--proc', '/proc', '--dev', '/dev', '--', '/usr/bin/true'];

async function startRows(): Promise<BenchRow[] | string> {
  if (process.getuid?.() !== 0) return 'needs root (uid switch, cgroups)';
  const dir = mkdtempSync('/tmp/warden-jail-bench-');
  const config = defaultJailerConfig({ stateDir: join(dir, 'state'), runtimeDir: join(dir, 'run'), uidRange: UIDS });
  try {
    const name = 'warden-test-jail-bench';
    const launches: number[] = [];
    const steps: Record<string, number[]> = {};
    const launch = async (): Promise<void> => {
      const t0 = performance.now();
      let last = t0;
      const h = await launchJail(spec(name), { fds: new Map(), config, onStep: (s) => { const now = performance.now(); (steps[s] ??= []).push(now - last); last = now; } });
      const end = performance.now();
      (steps['exec'] ??= []).push(end - last);
      launches.push(end - t0);
      await h.wait({ pollMs: 2 });
      await teardownJail(name, config);
    };
    // The bare chain again, with this process in a CPU cgroup under the jails' parent: what the jail's chain competes with there.
    const inParent: number[] = [];
    const cg = jailParentCgroup(config);
    const bareInParent = async (): Promise<void> => {
      if (cg === undefined) return;
      const t0 = performance.now();
      await cg.place(() => run(BARE_CHAIN));
      inParent.push(performance.now() - t0);
    };
    // Interleaved rounds: the baselines and the launch see the same load on this shared host.
    const m = await interleavedMedians({ unjailed: () => run(['/usr/bin/true']), bare: () => run(BARE_CHAIN), own: () => ownChainBare(config), inParent: bareInParent, full: launch }, 15, 2)
      .finally(() => cg?.remove());
    const launchOnly = median(launches.slice(-Math.max(1, launches.length - 2)));
    const bare = m.bare;
    const stepRow = (label: string, key: string): BenchRow => ({ group: 'jail', name: `  of which ${label}`, value: median((steps[key] ?? []).slice(-Math.max(1, (steps[key] ?? []).length - 2))), unit: 'ms' });
    return [
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: m.full, unit: 'ms', baseline: { name: 'unjailed spawn → exit', value: m.unjailed } },
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: m.full, unit: 'ms', baseline: { name: 'bare setpriv+bwrap chain, no cgroup/lease', value: bare } },
      { group: 'jail', name: 'launchJail until the program has exec\'d', value: launchOnly, unit: 'ms', baseline: { name: 'bare setpriv+bwrap chain → exit', value: bare }, goal: le(1.5) },
      { group: 'jail', name: 'launchJail until the program has exec\'d', value: launchOnly, unit: 'ms', baseline: { name: 'the jail\'s own chain and flags spawned bare → exit', value: m.own } },
      ...(inParent.length === 0 ? [] : [{ group: 'jail', name: 'launchJail until the program has exec\'d', value: launchOnly, unit: 'ms',
        baseline: { name: 'bare chain → exit in a CPU cgroup under the jails\' parent (shared with every jail here)', value: median(inParent.slice(-Math.max(1, inParent.length - 2))) } }]),
      stepRow('checks + lease (record written)', 'leased'), stepRow('cgroup created', 'cgroup'), stepRow('chain spawned until its program waits (in its cgroup)', 'started'),
      stepRow('go sent', 'going'), stepRow('exec (pids recorded meanwhile)', 'exec'),
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pureRows(): Promise<BenchRow[]> {
  const config = defaultJailerConfig({ uidRange: UIDS });
  const s = spec('warden-test-jail-bench');
  const facts = { uid: 1, gid: 1, groups: [], helperPath: '/h', setprivPath: '/s', bwrapPath: '/b', cgroupProcs: [], statusFd: 3, gateFd: 4, stderrFd: 5, landlockRequired: false };
  const n = 2000;
  const pure = await medianMs(() => { for (let i = 0; i < n; i++) { checkJailSpec(s, config); buildJailArgv(s, facts); } }, 7, 1);
  const dir = mkdtempSync('/tmp/warden-jail-bench-');
  try {
    const store = new LeaseStore(defaultJailerConfig({ stateDir: dir, uidRange: UIDS }), async () => true);
    const lease = await medianMs(async () => { await store.acquire({ name: 'b', cgroupName: 'b', cgroupLeaves: [], statusFile: '/x' }); await store.release('b'); }, 25, 3);
    return [
      { group: 'jail', name: 'checkJailSpec + buildJailArgv (pure)', value: (pure / n) * 1000, unit: 'µs' },
      { group: 'jail', name: 'lease acquire + release (lock, fsync, rename)', value: lease, unit: 'ms' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const benchmarks: Benchmark[] = [
  { group: 'jail start', run: startRows },
  { group: 'jail pure', run: pureRows },
];
