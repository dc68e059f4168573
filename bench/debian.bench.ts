/**
 * @module bench/debian: the Debian image of scripts/build-image.sh under TCG, from start
 * until sshd answers (its "SSH-2.0" banner on the forwarded port): `warden start` (jailed,
 * with the cloud-init seed it writes) next to bare QEMU booting the same image with the
 * same firmware, CPU model, memory and seed in the same run. Each boot is a first boot of
 * a fresh overlay (host keys are made then). Minutes per run, so it runs only when asked
 * (`npm run bench debian`, or WARDEN_BENCH_DEBIAN=1); WARDEN_BENCH_DEBIAN_RUNS sets the
 * runs per side (default 1).
 */
import { copyFileSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { dirname, join } from 'node:path';
import type { Benchmark, BenchRow } from './lib.js';
import { openManager } from '../src/vm/index.js';
import { bareQemu, debianImage, overlayDir } from '../test/debian/image.js';

const BOOT_TIMEOUT_MS = 600_000;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** True when a connection to the port gets sshd's banner within a few seconds. */
function banner(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (ok: boolean): void => { sock.destroy(); resolve(ok); };
    sock.setTimeout(5000, () => done(false));
    sock.on('data', (b: Buffer) => { got += b.toString('latin1'); if (got.includes('SSH-2.0')) done(true); });
    sock.on('error', () => done(false));
    sock.on('close', () => done(got.includes('SSH-2.0')));
  });
}

/** Milliseconds from t0 until sshd answers on `port`. */
async function untilBanner(port: number, t0: number): Promise<number> {
  for (;;) {
    if (await banner(port)) return performance.now() - t0;
    if (performance.now() - t0 > BOOT_TIMEOUT_MS) throw new Error(`sshd did not answer on port ${port} within ${BOOT_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function wardenRun(base: string, firmware: 'bios'): Promise<{ ms: number; seed: string; cleanup(): void }> {
  const o = overlayDir(base, 'warden-debian-bench-');
  const m = openManager({ stateDir: join(o.dir, 'state') });
  const name = `wdd-bench-${process.pid}`;
  const spec = join(o.dir, 'debian.json');
  writeFileSync(spec, JSON.stringify({
    apiVersion: 'warden/v1', name, memory: '1Gi', accel: 'tcg', firmware,
    // The shared base lies outside the overlay's directory: the image policy must be told.
      disks: [{ name: 'root', image: o.overlay, format: 'qcow2', bootIndex: 0, allowDirs: [dirname(base)] }],
    networks: [{ name: 'net0', type: 'user', forwards: [{ host: 0, guest: 22 }] }],
    cloudInit: { users: [{ name: 'bench' }] },
  }));
  await m.create(spec);
  try {
    const t0 = performance.now();
    const started = await m.start(name);
    const port = started.record.run?.forwards?.find((f) => f.guest === 22)?.host;
    if (port === undefined || port === 0) throw new Error('start recorded no port for the forward to guest port 22');
    const ms = await untilBanner(port, t0);
    // The seed warden wrote, kept for the bare run: both guests see the same cloud-init data.
    const seed = join(o.dir, 'seed-copy.iso');
    copyFileSync(join(m.store.paths(name).dir, 'cidata.iso'), seed);
    return { ms, seed, cleanup: o.cleanup };
  } finally {
    for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
  }
}

async function bareRun(base: string, seed: string): Promise<number> {
  const o = overlayDir(base, 'warden-debian-bench-bare-');
  const port = await freePort();
  const t0 = performance.now();
  const q = bareQemu(o.overlay, { forwardSsh: port, seed });
  try {
    return await untilBanner(port, t0);
  } finally {
    await q.stop();
    o.cleanup();
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

export const benchmarks: Benchmark[] = [{
  group: 'debian',
  async run(): Promise<BenchRow[] | string> {
    const asked = process.env['WARDEN_BENCH_DEBIAN'] === '1' || process.argv.slice(2).some((a) => 'debian'.includes(a) && a.length > 0);
    if (!asked) return 'minutes of TCG boots: run `npm run bench debian` (or WARDEN_BENCH_DEBIAN=1)';
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    const img = debianImage();
    if ('skip' in img) return img.skip;
    const runs = Math.max(1, Number(process.env['WARDEN_BENCH_DEBIAN_RUNS'] ?? '1') || 1);
    const warden: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < runs; i++) {
      const w = await wardenRun(img.path, 'bios');
      warden.push(w.ms);
      try { bare.push(await bareRun(img.path, w.seed)); } finally { w.cleanup(); }
    }
    const baseline = { name: 'bare QEMU, same image, firmware (SeaBIOS), -cpu max, memory, seed', value: median(bare) / 1000 };
    return [{ group: 'debian', name: `start → sshd banner (TCG, first boot, cloud-init), median of ${runs}`, value: median(warden) / 1000, unit: 's', baseline }];
  },
}];
