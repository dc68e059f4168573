/** @module bench/qmp: QMP round-trip latency and pipelined throughput of the typed client next to a minimal raw-socket client, against one real QEMU. */
import net from 'node:net';
import type { Benchmark, BenchRow } from './lib.js';
import { ge, le, median, medianMs, n } from './lib.js';
import { QmpClient } from '../src/qmp/index.js';
import { startQemu } from '../src/qmp/testing/index.js';

const SEQUENTIAL = n(6000, 100);
const PIPELINED = n(12000, 200);
/**
 * Raw and client alternate in this many blocks; each side's median block is kept (a shared
 * machine's load drifts), and each round's client/raw ratio is kept to show its spread next
 * to that of two identical raw clients (the A/A rows: the noise floor of this measurement).
 */
const ROUNDS = n(30, 2);
const WINDOW = 8;
const WARMUP = n(200, 20);

/**
 * The smallest honest QMP client: write a line, read a line; same capabilities (oob) as
 * QmpClient. It never looks into a reply; `parse` makes it JSON.parse each one, as any
 * client that uses the result must (a second, stricter baseline).
 */
class RawClient {
  private buf = '';
  private waiters: Array<(line: string) => void> = [];
  private lines: string[] = [];

  parse = false;

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8').on('data', (s: string) => {
      this.buf += s;
      for (let nl = this.buf.indexOf('\n'); nl !== -1; nl = this.buf.indexOf('\n')) {
        const line = this.buf.slice(0, nl);
        if (this.parse) JSON.parse(line);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line); else this.lines.push(line);
      }
    });
  }

  static async connect(path: string): Promise<RawClient> {
    const socket = net.connect(path);
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const c = new RawClient(socket);
    await c.readLine();
    c.write('{"execute":"qmp_capabilities","arguments":{"enable":["oob"]}}\n');
    await c.readLine();
    return c;
  }

  write(line: string): void {
    this.socket.write(line);
  }

  readLine(): Promise<string> {
    const l = this.lines.shift();
    return l !== undefined ? Promise.resolve(l) : new Promise((r) => this.waiters.push(r));
  }

  close(): void {
    this.socket.destroy();
  }
}

async function rawSequential(c: RawClient, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.write(`{"execute":"query-status","id":${i}}\n`);
    await c.readLine();
  }
}

async function rawPipelined(c: RawClient, n: number): Promise<void> {
  let sent = 0;
  for (; sent < Math.min(WINDOW, n); sent++) c.write(`{"execute":"query-status","id":${sent}}\n`);
  for (let got = 0; got < n; got++) {
    await c.readLine();
    if (sent < n) c.write(`{"execute":"query-status","id":${sent++}}\n`);
  }
}

async function clientSequential(c: QmpClient, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await c.execute('query-status');
}

async function clientPipelined(c: QmpClient, n: number): Promise<void> {
  let next = 0;
  const lane = async () => { while (next++ < n) await c.execute('query-status'); };
  await Promise.all(Array.from({ length: WINDOW }, lane));
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Quartiles of per-round ratios a[i] / b[i], as "q1-q3" text. */
function spread(a: readonly number[], b: readonly number[]): { median: number; text: string } {
  const r = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  const q = (f: number) => r[Math.min(r.length - 1, Math.floor(f * r.length))]!;
  return { median: q(0.5), text: `quartiles ${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)}` };
}

async function run(): Promise<BenchRow[] | string> {
  const qemu = await startQemu({ monitors: 3 }).catch((e: Error) => e);
  if (qemu instanceof Error) return `cannot start QEMU: ${qemu.message}`;
  try {
    const raw = await RawClient.connect(qemu.sockets[0]!);
    const raw2 = await RawClient.connect(qemu.sockets[2]!);
    const client = await QmpClient.connect({ path: qemu.sockets[1]! });
    try {
      await rawSequential(raw, WARMUP);
      await rawSequential(raw2, WARMUP);
      await clientSequential(client, WARMUP);
      // Interleaved in blocks so that drift on a shared machine hits both sides alike.
      const seq = { raw: [] as number[], cli: [] as number[], parsed: [] as number[], raw2: [] as number[] };
      const pipe = { raw: [] as number[], cli: [] as number[], raw2: [] as number[] };
      for (let r = 0; r < ROUNDS; r++) {
        seq.raw.push(await timed(() => rawSequential(raw, SEQUENTIAL / ROUNDS)));
        seq.cli.push(await timed(() => clientSequential(client, SEQUENTIAL / ROUNDS)));
        seq.raw2.push(await timed(() => rawSequential(raw2, SEQUENTIAL / ROUNDS)));
        raw.parse = true;
        seq.parsed.push(await timed(() => rawSequential(raw, SEQUENTIAL / ROUNDS)));
        raw.parse = false;
        pipe.raw.push(await timed(() => rawPipelined(raw, PIPELINED / ROUNDS)));
        pipe.cli.push(await timed(() => clientPipelined(client, PIPELINED / ROUNDS)));
        pipe.raw2.push(await timed(() => rawPipelined(raw2, PIPELINED / ROUNDS)));
      }
      const [rawSeq, cliSeq, rawPipe, cliPipe] = [median(seq.raw) * ROUNDS, median(seq.cli) * ROUNDS, median(pipe.raw) * ROUNDS, median(pipe.cli) * ROUNDS];
      const rawSchema = await medianMs(async () => { raw.write('{"execute":"query-qmp-schema","id":"s"}\n'); await raw.readLine(); }, 15, 2);
      const cliSchema = await medianMs(() => client.execute('query-qmp-schema'), 15, 2);
      const us = (ms: number, n: number) => (ms * 1000) / n;
      const perSec = (ms: number, n: number) => n / (ms / 1000);
      // Per round: time ratios (sequential: client/raw; pipelined: raw/client, i.e. throughput client/raw).
      const [seqCli, seqAA, pipeCli, pipeAA] = [spread(seq.cli, seq.raw), spread(seq.raw2, seq.raw), spread(pipe.raw, pipe.cli), spread(pipe.raw, pipe.raw2)];
      return [
        { group: 'qmp', name: `query-status sequential round trip (QmpClient, ${SEQUENTIAL} calls)`, value: us(cliSeq, SEQUENTIAL), unit: 'us/call', baseline: { name: 'raw socket client', value: us(rawSeq, SEQUENTIAL) }, goal: le(1.05) },
        { group: 'qmp', name: `query-status sequential round trip (QmpClient, ${SEQUENTIAL} calls)`, value: us(cliSeq, SEQUENTIAL), unit: 'us/call', baseline: { name: 'raw socket client that JSON.parses each reply', value: us(median(seq.parsed) * ROUNDS, SEQUENTIAL) } },
        { group: 'qmp', name: `query-status pipelined, window ${WINDOW} (QmpClient, ${PIPELINED} calls)`, value: perSec(cliPipe, PIPELINED), unit: 'calls/s', baseline: { name: 'raw socket client', value: perSec(rawPipe, PIPELINED) }, goal: ge(1.0) },
        { group: 'qmp', name: 'query-qmp-schema, one ~200 KiB reply line (QmpClient, median of 15)', value: cliSchema, unit: 'ms/call', baseline: { name: 'raw socket client', value: rawSchema } },
        // The noise floor: the same raw client on a third monitor against the first, interleaved alike.
        { group: 'qmp', name: `A/A: a second raw client, one call at a time (${SEQUENTIAL} calls)`, value: us(median(seq.raw2) * ROUNDS, SEQUENTIAL), unit: 'us/call', baseline: { name: 'raw socket client', value: us(rawSeq, SEQUENTIAL) } },
        { group: 'qmp', name: `A/A: a second raw client, window ${WINDOW} (${PIPELINED} calls)`, value: perSec(median(pipe.raw2) * ROUNDS, PIPELINED), unit: 'calls/s', baseline: { name: 'raw socket client', value: perSec(rawPipe, PIPELINED) } },
        { group: 'qmp', name: `one call at a time: per-round time ratio QmpClient/raw over ${ROUNDS} rounds, ${seqCli.text}; A/A raw/raw ${seqAA.text}`, value: seqCli.median, unit: 'x' },
        { group: 'qmp', name: `window ${WINDOW}: per-round throughput ratio QmpClient/raw over ${ROUNDS} rounds, ${pipeCli.text}; A/A raw/raw ${pipeAA.text}`, value: pipeCli.median, unit: 'x' },
      ];
    } finally {
      raw.close();
      raw2.close();
      await client.close();
    }
  } finally {
    await qemu.kill();
  }
}

export const benchmarks: Benchmark[] = [{ group: 'qmp', run }];
