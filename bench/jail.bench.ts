/** @module bench/jail: what confinement costs: a jailed start/exit against an unjailed one and the bare setpriv+bwrap chain. */
import { spawn } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildJailArgv, checkJailSpec, defaultJailerConfig, launchJail, LeaseStore, reachableHelper, teardownJail, type JailSpec,
} from '../src/jail/index.js';
import { interleavedMedians, le, median, medianMs, type Benchmark, type BenchRow } from './lib.js';
import { jailParentCgroup } from './in-cgroup.js';
import { HELPER_TARGET } from '../src/jail/paths.js';
import { spawnChain } from '../src/jail/spawn.js';

/**
 * A uid range of this run's own (a concurrent run, CI's say, must not find its uids taken):
 * 32 ids from 240000 up, by pid. 32, because the lease skips an id while any process of it
 * lives, and the last launch's processes may still be exiting when the next one leases.
 */
const UIDS = { first: 240000 + (process.pid % 300) * 32, count: 32 };
const BARE_UID = UIDS.first + 31;

/** Spawns argv and waits for its exit; a failure fails the bench (a baseline that does not run its program measures nothing). */
function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    p.on('error', reject);
    p.on('close', (code) => { if (code === 0) resolve(); else reject(new Error(`${argv.join(' ')} exited ${code}`)); });
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

/** The jail's argv for the bench spec: helper pre → setpriv → bwrap → helper inner → /usr/bin/true, joining no cgroup. */
function jailArgv(config: ReturnType<typeof defaultJailerConfig>): string[] {
  // The helper as launchJail binds it: in a checkout under /root it is out of the jail uid's reach.
  return buildJailArgv(spec('warden-test-jail-bare'), { uid: BARE_UID, gid: BARE_UID, groups: [], helperPath: reachableHelper(config.helperPath),
    setprivPath: config.setprivPath, bwrapPath: config.bwrapPath, cgroupProcs: [], statusFd: 3, gateFd: 4, stderrFd: 5, landlockRequired: false });
}

/**
 * The fair bare chain: setpriv and bwrap with exactly the jail's options (the same uid drop,
 * capability sets, namespaces, mounts, /dev, status fd, hostname, environment) running
 * /usr/bin/true directly: the jail's argv without the exec helper (pre, its bind, inner).
 */
export function fairBareChain(jail: readonly string[]): string[] {
  const setpriv = jail.indexOf('--') + 1;
  const bwrap = jail.indexOf('--', setpriv) + 1;
  const inner = jail.indexOf('--', bwrap) + 1;
  const bwrapArgs = jail.slice(bwrap, inner - 1);
  const helperBind = bwrapArgs.findIndex((a, i) => a === '--ro-bind' && bwrapArgs[i + 2] === HELPER_TARGET);
  if (helperBind >= 0) bwrapArgs.splice(helperBind, 3);
  return [...jail.slice(setpriv, bwrap), ...bwrapArgs, '--', '/usr/bin/true'];
}

/** Spawns a chain (fd 3: the status fd, to /dev/null; fd 4: a pipe for the gate, written at once) and waits for its exit. */
function runChain(argv: string[], gated: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const status = openSync('/dev/null', 'w');
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore', status, gated ? 'pipe' : 'ignore', status], env: {} });
    closeSync(status);
    const gate = gated ? p.stdio[4] as Duplex : undefined;
    gate?.on('error', () => undefined);
    gate?.write('g');
    p.on('error', reject);
    p.on('exit', (code) => { gate?.destroy(); if (code === 0) resolve(); else reject(new Error(`${argv[0]} chain exited ${code}`)); });
  });
}

/**
 * The fair chain started as launchJail starts a jail's chain (spawnChain: the addon's
 * posix_spawn, no fork of this process, where the build has it), waiting for its exit.
 * Diagnostic: what the chain costs without Node's fork, which the goal's baselines pay.
 */
function runChainAsJail(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const status = openSync('/dev/null', 'w');
    let child;
    try { child = spawnChain(argv, { stdin: 'ignore', stdout: 'ignore', stderr: status }, [], status); } finally { closeSync(status); }
    const hold = setInterval(() => undefined, 1000); // the chain's exit watch does not hold the event loop
    const done = (err?: Error): void => { clearInterval(hold); for (const s of child.stdio) s?.destroy(); if (err === undefined) resolve(); else reject(err); };
    child.once('error', done);
    child.once('exit', (code: number | null) => done(code === 0 ? undefined : new Error(`${argv[0]} chain exited ${code}`)));
  });
}

/**
 * The original baseline, with fewer mounts and flags than a jail has (no user/cgroup
 * namespace flags, /dev nodes, hostname, status fd). As the issue had it, it never ran its
 * program (no /lib64 in the view: bwrap's execvp of /usr/bin/true failed, exit 1, and its time
 * was taken anyway); the two symlinks make it run /usr/bin/true.
 */
const MINIMAL_CHAIN = ['/usr/bin/setpriv', `--reuid=${BARE_UID}`, `--regid=${BARE_UID}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
  '/usr/bin/bwrap', '--unshare-all', '--new-session', '--ro-bind', '/usr', '/usr', '--symlink', 'usr/lib', '/lib', '--symlink', 'usr/lib64', '/lib64',
  '--proc', '/proc', '--dev', '/dev', '--', '/usr/bin/true'];

/** CPU (ms) of this process and of its reaped children (/proc/self/stat cutime + cstime, in clock ticks). */
function cpuNow(): number {
  const f = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /s, '').split(' ');
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000 + (Number(f[13]) + Number(f[14])) * 10; // fields 16, 17; USER_HZ = 100
}

/** Wraps fn so each measured call adds its CPU (self + children) to `into`. */
function withCpu(into: number[], fn: () => Promise<unknown>): () => Promise<void> {
  return async () => { const c0 = cpuNow(); await fn(); into.push(cpuNow() - c0); };
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function startRows(): Promise<BenchRow[] | string> {
  if (process.getuid?.() !== 0) return 'needs root (uid switch, cgroups)';
  const dir = mkdtempSync('/tmp/warden-jail-bench-');
  const config = defaultJailerConfig({ stateDir: join(dir, 'state'), runtimeDir: join(dir, 'run'), uidRange: UIDS });
  try {
    const name = 'warden-test-jail-bench';
    const launches: number[] = [];
    const managerCpu: number[] = [];
    const steps: Record<string, number[]> = {};
    const launch = async (): Promise<void> => {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      let last = t0;
      const h = await launchJail(spec(name), { fds: new Map(), config, onStep: (s) => { const now = performance.now(); (steps[s] ??= []).push(now - last); last = now; } });
      const end = performance.now();
      const c = process.cpuUsage(c0);
      managerCpu.push((c.user + c.system) / 1000);
      (steps['exec'] ??= []).push(end - last);
      launches.push(end - t0);
      await h.wait({ pollMs: 2 });
      await teardownJail(name, config);
    };
    const own = jailArgv(config);
    const fair = fairBareChain(own);
    // The fair chain again, joined to a CPU cgroup under the jails' parent by the exec helper (as a
    // jail's chain joins its own): what the jail's chain competes with there.
    const inParent: number[] = [];
    const cg = jailParentCgroup(config);
    const fairInParentArgv = cg?.joinArgv(reachableHelper(config.helperPath), fair);
    const fairInParent = async (): Promise<void> => {
      if (fairInParentArgv === undefined) return;
      const t0 = performance.now();
      await runChain(fairInParentArgv, false);
      inParent.push(performance.now() - t0);
    };
    const cpu = { fair: [] as number[], own: [] as number[], full: [] as number[] };
    // Interleaved rounds: the baselines and the launch see the same load on this shared host.
    const m = await interleavedMedians({
      unjailed: () => run(['/usr/bin/true']), minimal: () => run(MINIMAL_CHAIN), fair: withCpu(cpu.fair, () => runChain(fair, false)),
      own: withCpu(cpu.own, () => runChain(own, true)), inParent: fairInParent, full: withCpu(cpu.full, launch), fairSpawned: () => runChainAsJail(fair),
    }, 40, 2).finally(() => cg?.remove());
    const tail = (xs: number[]): number[] => xs.slice(-Math.max(1, xs.length - 2)); // the measured rounds, warm-up dropped
    const launchOnly = median(tail(launches));
    const stepRow = (label: string, key: string): BenchRow => ({ group: 'jail', name: `  of which ${label}`, value: median(tail(steps[key] ?? [])), unit: 'ms' });
    const exec = 'launchJail until the program has exec\'d';
    const load = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
    return [
      { group: 'jail', name: exec, value: launchOnly, unit: 'ms', baseline: { name: 'fair bare chain: setpriv + bwrap with the jail\'s own options, namespaces and mounts → /usr/bin/true → exit', value: m.fair }, goal: le(1.5) },
      { group: 'jail', name: exec, value: launchOnly, unit: 'ms', baseline: { name: 'the jail\'s own chain (exec helper, gate) spawned bare, no lease/cgroup → exit', value: m.own }, goal: le(1.5) },
      { group: 'jail', name: exec, value: launchOnly, unit: 'ms', baseline: { name: 'the issue\'s minimal setpriv + bwrap chain (fewer mounts and flags: not fair; now runs its program) → exit', value: m.minimal } },
      ...(inParent.length === 0 ? [] : [{ group: 'jail', name: exec, value: launchOnly, unit: 'ms',
        baseline: { name: 'fair bare chain → exit, joined by the exec helper to a CPU cgroup under the jails\' parent (shared with every jail here)', value: median(tail(inParent)) } }]),
      { group: 'jail', name: exec, value: launchOnly, unit: 'ms', baseline: { name: 'fair bare chain → exit, started as a jail\'s chain is (spawnChain: posix_spawn, no fork of this process)', value: m.fairSpawned } },
      stepRow('checks + lease (record written)', 'leased'), stepRow('cgroup created', 'cgroup'), stepRow('chain spawned until its program waits (in its cgroup)', 'started'),
      stepRow('go sent', 'going'), stepRow('exec (pids recorded meanwhile)', 'exec'),
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: m.full, unit: 'ms', baseline: { name: 'fair bare chain → exit', value: m.fair } },
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: m.full, unit: 'ms', baseline: { name: 'unjailed spawn → exit', value: m.unjailed } },
      { group: 'jail', name: 'CPU per launch → exit → teardown (manager + chain, mean)', value: mean(tail(cpu.full)), unit: 'ms', baseline: { name: 'CPU per fair bare chain', value: Math.max(0.01, mean(tail(cpu.fair))) } },
      { group: 'jail', name: 'CPU of the manager per launch until exec (median; its spawn of the chain included)', value: median(tail(managerCpu)), unit: 'ms' },
      { group: 'jail', name: 'CPU per own chain spawned bare (mean)', value: mean(tail(cpu.own)), unit: 'ms', baseline: { name: 'CPU per fair bare chain', value: Math.max(0.01, mean(tail(cpu.fair))) } },
      { group: 'jail', name: 'load average (1 min) at the end of the run', value: load, unit: '' },
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
      { group: 'jail', name: 'lease acquire + release (host-id probe, lock, write + rename)', value: lease, unit: 'ms' },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const benchmarks: Benchmark[] = [
  { group: 'jail start', run: startRows },
  { group: 'jail pure', run: pureRows },
];
