/** @module bench/jail: what confinement costs: a jailed start/exit against an unjailed one and the bare setpriv+bwrap chain. */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildJailArgv, checkJailSpec, defaultJailerConfig, launchJail, LeaseStore, teardownJail, type JailSpec,
} from '../src/jail/index.js';
import { le, medianMs, type Benchmark, type BenchRow } from './lib.js';

const UIDS = { first: 231196, count: 4 };

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

const BARE_CHAIN = ['/usr/bin/setpriv', '--reuid=231199', '--regid=231199', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs',
  '/usr/bin/bwrap', '--unshare-all', '--new-session', '--ro-bind', '/usr', '/usr', '--proc', '/proc', '--dev', '/dev', '--', '/usr/bin/true'];

async function startRows(): Promise<BenchRow[] | string> {
  if (process.getuid?.() !== 0) return 'needs root (uid switch, cgroups)';
  const dir = mkdtempSync('/tmp/warden-jail-bench-');
  const config = defaultJailerConfig({ stateDir: join(dir, 'state'), runtimeDir: join(dir, 'run'), uidRange: UIDS });
  try {
    const name = 'warden-test-jail-bench';
    const unjailed = await medianMs(() => run(['/usr/bin/true']), 15, 2);
    const bare = await medianMs(() => run(BARE_CHAIN), 15, 2);
    let launchOnly = 0;
    const launches: number[] = [];
    const full = await medianMs(async () => {
      const t0 = performance.now();
      const h = await launchJail(spec(name), { fds: new Map(), config });
      launches.push(performance.now() - t0);
      await h.wait({ pollMs: 2 });
      await teardownJail(name, config);
    }, 15, 2);
    launches.sort((a, b) => a - b);
    launchOnly = launches[Math.floor(launches.length / 2)] ?? Number.NaN;
    return [
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: full, unit: 'ms', baseline: { name: 'unjailed spawn → exit', value: unjailed } },
      { group: 'jail', name: 'launchJail → exit → teardown (/usr/bin/true)', value: full, unit: 'ms', baseline: { name: 'bare setpriv+bwrap chain, no cgroup/lease', value: bare } },
      { group: 'jail', name: 'launchJail until the program has exec\'d', value: launchOnly, unit: 'ms', baseline: { name: 'bare setpriv+bwrap chain → exit', value: bare }, goal: le(1.5) },
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
