/**
 * @module bench/daemon: wardend, started as the README says (a child process on a private
 * socket and state root): start → running through the API (warm daemon) and `warden start`
 * through the daemon (cold CLI process) against bare QEMU with the same argv and fds in
 * the same run; QEMU exit → SSE event latency; daemon memory at rest and per paused VM;
 * GET /v1/vms as the number of defined VMs grows.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { ApiClient } from '../src/api/index.js';
import { LocalService, StateStore, openManager, repoRoot, testEnv, type PlanView } from '../src/vm/index.js';
import { NodeFs } from '../src/sys/index.js';
import { le, median, medianMs, n, type Benchmark, type BenchRow } from './lib.js';
import { bareStart } from './vm.bench.js';

/** What bin/warden runs (the bundle through its code cache; bin.js while the bundle is stale): the cold CLI a user starts. */
const boot = (): string => join(repoRoot(), 'dist', 'src', 'cli', 'boot.cjs');

async function daemon(socket: string, stateDir: string): Promise<ChildProcess> {
  // Through bin/warden, as users and wardend.service run it: its memory settings for the daemon
  // (a 1 MiB young generation, one malloc arena) and boot.cjs's bundle (dist/src/cli/bin.js
  // unbundled holds ~25 MiB more at rest). bench/gc-probe.cjs preloaded: a full GC on demand.
  const probe = `--require "${join(repoRoot(), 'bench', 'gc-probe.cjs')}"`;
  const env = { ...process.env, NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} ${probe}`.trim() };
  const p = spawn(join(repoRoot(), 'bin', 'warden'), ['daemon', '--socket', socket, '--state-dir', stateDir], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`the daemon did not start within 30 s: ${err}`)); }, 30_000);
    p.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (err.includes('serving ')) { clearTimeout(timer); resolve(); } });
    p.once('exit', () => { clearTimeout(timer); reject(new Error(`the daemon exited: ${err}`)); });
  });
  return p;
}

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}

/** The daemon's RSS and JS heap in use right after a full GC (bench/gc-probe.cjs); bounded, like every wait here. */
function afterGc(d: ChildProcess): Promise<{ rss: number; heapUsed: number }> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => { d.stderr!.off('data', on); reject(new Error('the daemon did not report a GC within 10 s')); }, 10_000);
    function on(c: Buffer): void {
      got += c.toString();
      const m = /gc-probe (\{.*\})\n/.exec(got);
      if (m === null) return;
      clearTimeout(timer);
      d.stderr!.off('data', on);
      resolve(JSON.parse(m[1]!) as { rss: number; heapUsed: number });
    }
    d.stderr!.on('data', on);
    d.kill('SIGUSR2');
  });
}

/** Resolves with the time the first `stopped` event for `vm` arrives; every wait is bounded (a dead daemon must not hang the run). */
function nextStopped(socket: string, vm: string): { ready: Promise<void>; at: Promise<number>; close: () => void } {
  let ready!: () => void;
  let got!: (t: number) => void;
  let fail!: (e: Error) => void;
  const r = new Promise<void>((res, rej) => { ready = res; fail = rej; });
  const at = new Promise<number>((res, rej) => { got = res; const f = fail; fail = (e) => { f(e); rej(e); }; });
  const timer = setTimeout(() => fail(new Error(`no stopped event for ${vm} within 20 s`)), 20_000);
  const req = request({ socketPath: socket, path: `/v1/events?vm=${vm}&type=stopped`, agent: false }, (res) => {
    res.on('data', (c: Buffer) => { if (c.toString().includes('event: stopped')) { clearTimeout(timer); got(performance.now()); } else ready(); });
    res.on('end', () => fail(new Error('the event stream ended')));
  });
  req.on('error', (e) => fail(e));
  req.end();
  at.catch(() => undefined);
  return { ready: r, at, close: () => { clearTimeout(timer); req.destroy(); } };
}

export const benchmarks: Benchmark[] = [{
  group: 'daemon',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const env = testEnv('warden-daemon-bench-');
    const socket = join(env.dir, 'w.sock');
    const d = await daemon(socket, env.stateRoot);
    const api = new ApiClient(socket);
    const store = new StateStore(env.stateRoot, new NodeFs());
    const rows: BenchRow[] = [];
    try {
      const base = rssBytes(d.pid!);
      const spec = (name: string, disks = false): Record<string, unknown> => ({
        ...JSON.parse(readFileSync(env.specFile({ name }), 'utf8')), memory: '64Mi', ...(disks ? {} : { disks: [] }), // one writer per disk: the many VMs boot from their initramfs only
      });
      const name = 'wdd-bench';
      await api.createVm(spec(name, true));
      await api.setState(name, { action: 'start' }, 120); // warm-up: caches
      await api.setState(name, { action: 'kill' }, 60);
      // The CLI's warm-up too: a command's first run compiles it and writes its V8 code cache
      // (src/cli/boot.cts), which every later `warden start` reads; the rows are about those.
      const first = spawnSync(process.execPath, [boot(), 'start', name, '--state-dir', env.stateRoot, '--json'], { encoding: 'utf8' });
      if (first.status !== 0) throw new Error(`warden start through the daemon failed: ${first.stdout}${first.stderr}`);
      await api.setState(name, { action: 'kill' }, 60);
      const plan = JSON.parse(readFileSync(join(store.paths(name).dir, 'plan.json'), 'utf8')) as PlanView;
      // The same VM started in-process (LocalService, the CLI's direct mode) on a second state root: the daemon's own share.
      const local = new LocalService(openManager({ stateDir: join(env.dir, 'local-state') }));
      await local.create({ file: env.specFile({ name }) });
      await local.start(name);
      await local.kill(name);
      const inProcess: number[] = [];
      const warm: number[] = [];
      const bare: number[] = [];
      const cold: number[] = [];
      const nodeBare: number[] = [];
      const exitToEvent: number[] = [];
      for (let i = 0; i < n(5, 1); i++) {
        let t0 = performance.now();
        await api.setState(name, { action: 'start' }, 120);
        warm.push(performance.now() - t0);
        const ev = nextStopped(socket, name);
        await ev.ready;
        const pid = (await api.getVm(name)).run!.qemu.pid;
        t0 = performance.now();
        process.kill(pid, 'SIGKILL');
        exitToEvent.push((await ev.at) - t0);
        ev.close();
        bare.push(await bareStart(plan, store.paths(name).qmpSocket, env.stateRoot));
        t0 = performance.now();
        await local.start(name);
        inProcess.push(performance.now() - t0);
        await local.kill(name);
        t0 = performance.now();
        const r = spawnSync(process.execPath, [boot(), 'start', name, '--state-dir', env.stateRoot, '--json'], { encoding: 'utf8' });
        cold.push(performance.now() - t0);
        if (r.status !== 0) throw new Error(`warden start through the daemon failed: ${r.stdout}${r.stderr}`);
        // What any CLI process costs before it does anything: the floor of the cold start's own share.
        t0 = performance.now();
        spawnSync(process.execPath, ['-e', '0']);
        nodeBare.push(performance.now() - t0);
        await api.setState(name, { action: 'kill' }, 60);
      }
      const baseline = { name: 'bare QEMU, same argv and fds (-S, QMP cont)', value: median(bare) };
      rows.push(
        { group: 'daemon', name: 'start → running through the API (warm daemon)', value: median(warm), unit: 'ms', baseline, goal: le(1.25) },
        { group: 'daemon', name: '  the same start in-process (LocalService, no daemon)', value: median(inProcess), unit: 'ms', baseline },
        { group: 'daemon', name: '`warden start` through the daemon (cold CLI)', value: median(cold), unit: 'ms', baseline, goal: le(3) },
        // The cold start is the warm API start plus a CLI process: its share against a bare `node -e 0` in the same rounds.
        { group: 'daemon', name: '  its CLI process share (cold CLI - warm API start, per round)', value: median(cold.map((c, i) => c - warm[i]!)), unit: 'ms', baseline: { name: '`node -e 0`', value: median(nodeBare) } },
        { group: 'daemon', name: 'QEMU SIGKILL → stopped event on SSE', value: median(exitToEvent), unit: 'ms', goal: le(50, 'value') },
        { group: 'daemon', name: 'daemon memory at rest (RSS)', value: base / 2 ** 20, unit: 'MiB', goal: le(60, 'value') },
      );

      // Per VM: from after the runs above (code paths warm), so what grows is what N supervisors hold.
      // RSS as it is, and after a full GC (what is held; young-generation and old-space garbage
      // not collected yet otherwise counts as per-VM memory). The GC at each point comes after the
      // RSS read, so it only makes the later plain RSS reads start from a collected heap.
      const warmRss = rssBytes(d.pid!);
      const warmGc = await afterGc(d);
      const paused = n(50, 2);
      let half = warmRss;
      let halfGc = warmGc;
      for (let i = 0; i < paused; i++) {
        if (i === paused / 2) { half = rssBytes(d.pid!); halfGc = await afterGc(d); }
        const vm = `wdd-p${i}`;
        await api.createVm(spec(vm));
        await api.setState(vm, { action: 'start', paused: true }, 120);
      }
      const withVms = rssBytes(d.pid!);
      const withVmsGc = await afterGc(d);
      rows.push({ group: 'daemon', name: 'daemon memory after the start runs above (RSS)', value: warmRss / 2 ** 20, unit: 'MiB' });
      rows.push({ group: 'daemon', name: `daemon memory per paused VM (${paused} VMs, from the start runs)`, value: (withVms - warmRss) / paused / 1024, unit: 'KiB', goal: le(100, 'value') });
      // The second half's growth per VM: heap growth that warm-up left behind counts less.
      rows.push({ group: 'daemon', name: `  the same over VMs ${paused / 2 + 1}-${paused} only`, value: (withVms - half) / (paused / 2) / 1024, unit: 'KiB' });
      const perVm = (a: number, b: number, count: number): number => (b - a) / count / 1024;
      rows.push({ group: 'daemon', name: '  after a full GC at each point: RSS per paused VM', value: perVm(warmGc.rss, withVmsGc.rss, paused), unit: 'KiB' });
      rows.push({ group: 'daemon', name: `    the same over VMs ${paused / 2 + 1}-${paused} only`, value: perVm(halfGc.rss, withVmsGc.rss, paused / 2), unit: 'KiB' });
      rows.push({ group: 'daemon', name: '  after a full GC at each point: JS heap in use per paused VM', value: perVm(warmGc.heapUsed, withVmsGc.heapUsed, paused), unit: 'KiB' });
      rows.push({ group: 'daemon', name: `    the same over VMs ${paused / 2 + 1}-${paused} only`, value: perVm(halfGc.heapUsed, withVmsGc.heapUsed, paused / 2), unit: 'KiB' });

      for (const count of [n(50, 5), n(200, 20)]) {
        for (let i = (await api.listVms()).length; i < count; i++) await api.createVm({ ...spec(`wdd-l${i}`) });
        rows.push({ group: 'daemon', name: `GET /v1/vms with ${count} VMs`, value: await medianMs(() => api.listVms(), 9), unit: 'ms' });
      }
    } finally {
      for (const v of await api.listVms().catch(() => [])) await api.deleteVm(v.name, true).catch(() => undefined);
      if (d.exitCode === null && d.signalCode === null) { // a daemon that died already must not be waited for
        const gone = new Promise((r) => d.once('exit', r));
        d.kill('SIGTERM');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 10_000))]);
      }
      env.cleanup();
    }
    return rows;
  },
}];
