/**
 * @module bench/helpers: what the helpers cost and give. Start → running of the same VM
 * with no NIC (baseline), with a user NIC served by passt in its own jail, and with QEMU's
 * built-in slirp, with a TPM (swtpm in its own jail), and with a shared folder (virtiofsd in its own jail); then guest → host throughput of passt against slirp in the same run: the
 * guest streams zeros with nc (warden.push=) to a host listener that times the bytes.
 */
import { createServer, type AddressInfo, type Server } from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isQuick, n, type Benchmark, type BenchRow } from './lib.js';
import { GUEST_READY_LINE, openManager, testEnv, waitForText } from '../src/vm/index.js';

// Quick mode (CI) only checks that the code runs: one start each, no guest boot (the throughput rows need one per backend).
const RUNS = n(3, 1);
const PUSH_MIB = 16;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** A listener that resolves with MiB/s once `bytes` arrived on one connection (timed from accept). */
function sink(bytes: number): { server: Server; port: () => number; rate: Promise<number> } {
  let resolve!: (v: number) => void;
  const rate = new Promise<number>((r) => { resolve = r; });
  const server = createServer((sock) => {
    const t0 = performance.now();
    let got = 0;
    sock.on('data', (b: Buffer) => {
      got += b.length;
      if (got >= bytes) { resolve(bytes / 1048576 / ((performance.now() - t0) / 1000)); sock.destroy(); }
    });
    sock.on('error', () => undefined);
  });
  return { server, port: () => (server.address() as AddressInfo).port, rate };
}

export const benchmarks: Benchmark[] = [{
  group: 'helpers',
  async run(): Promise<BenchRow[] | string> {
    if (process.getuid?.() !== 0) return 'needs root (the jailer)';
    if (!existsSync('/usr/bin/passt')) return 'passt is not installed';
    const env = testEnv('warden-helpers-bench-');
    const m = openManager({ stateDir: env.stateRoot });
    const kinds = { none: [], passt: [{ name: 'n0', type: 'user' }], slirp: [{ name: 'n0', type: 'user', backend: 'slirp' }], tpm: [], share: [] } as const;
    // Helpers that are not NICs: spec fields of their own (no throughput row).
    const extras: Record<string, Record<string, unknown>> = existsSync('/usr/bin/swtpm') ? { tpm: { tpm: true } } : {};
    const shareDir = mkdtempSync(join(tmpdir(), 'warden-helpers-share-')); // a user's 0700 directory
    if (existsSync('/usr/lib/qemu/virtiofsd')) extras['share'] = { shares: [{ name: 'data', path: shareDir }] };
    const starts: Record<string, number[]> = {};
    const rates: Record<string, number> = {};
    try {
      for (const [kind, networks] of Object.entries(kinds)) {
        if ((kind === 'tpm' || kind === 'share') && extras[kind] === undefined) continue;
        const s = sink(PUSH_MIB * 1048576);
        await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
        const name = `wdv-hb-${kind}-${process.pid}`;
        const push = kind === 'none' || kind === 'tpm' || kind === 'share' ? '' : ` warden.ip=10.0.2.15/24 warden.gw=10.0.2.2 warden.push=10.0.2.2:${s.port()}:${PUSH_MIB}`;
        await m.create(env.specFile({ name, networks: networks as unknown as Array<Record<string, unknown>>, cmdline: push.trim(), ...(extras[kind] ? { extra: extras[kind] } : {}) }));
        if (RUNS > 1) { await m.start(name); await m.kill(name); } // warm-up (capabilities, KVM verdict, helper views)
        for (let i = 0; i < RUNS; i++) {
          const t0 = performance.now();
          await m.start(name);
          (starts[kind] ??= []).push(performance.now() - t0);
          if (i < RUNS - 1) await m.kill(name);
        }
        if (kind !== 'none' && kind !== 'tpm' && kind !== 'share' && !isQuick()) {
          await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
          rates[kind] = await Promise.race([s.rate, new Promise<number>((_, rej) => setTimeout(() => rej(new Error(`no ${PUSH_MIB} MiB from the ${kind} guest within 120 s`)), 120_000))]);
        }
        await m.kill(name);
        s.server.close();
      }
      const base = { name: 'same VM without a NIC', value: median(starts['none']!) };
      return [
        { group: 'helpers', name: 'start → running with a passt NIC (passt jailed)', value: median(starts['passt']!), unit: 'ms', baseline: base },
        { group: 'helpers', name: 'start → running with a slirp NIC (inside QEMU)', value: median(starts['slirp']!), unit: 'ms', baseline: base },
        ...(starts['tpm'] ? [{ group: 'helpers', name: 'start → running with tpm: true (swtpm jailed)', value: median(starts['tpm']), unit: 'ms', baseline: base }] : []),
        ...(starts['share'] ? [{ group: 'helpers', name: 'start → running with a shared folder (virtiofsd jailed, memfd memory)', value: median(starts['share']), unit: 'ms', baseline: base }] : []),
        ...(isQuick() ? [] : [{ group: 'helpers', name: `guest → host TCP through passt (${PUSH_MIB} MiB, TCG)`, value: rates['passt']!, unit: 'MiB/s', baseline: { name: 'slirp, same guest and run', value: rates['slirp']! } }]),
      ];
    } finally {
      for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
      env.cleanup();
      rmSync(shareDir, { recursive: true, force: true });
    }
  },
}];
