/** @module bench/qmp: QMP round-trip latency and pipelined throughput of the typed client next to a minimal raw-socket client, against one real QEMU. */
import net from 'node:net';
import type { Benchmark, BenchRow } from './lib.js';
import { ge, le, median, medianMs, n } from './lib.js';
import { QmpClient } from '../src/qmp/index.js';
import { startQemu } from '../src/qmp/testing/index.js';

const SEQUENTIAL = n(6000, 100);
const PIPELINED = n(12000, 200);
/**
 * Rounds: each round moves the connections to other monitors (see run). One call at a time,
 * the sides alternate call by call (each call timed; its mean and median kept): a shared
 * machine's load drifts between blocks by more than the 5% the goal asks about. Pipelined,
 * they alternate in blocks, each side's median block kept, and each round's client/raw ratio
 * is kept to show its spread next to that of two identical raw clients (the A/A rows: the
 * noise floor of this measurement).
 */
const ROUNDS = n(30, 2);
const WINDOW = 8;
/** Pipelined blocks per side and round (short blocks, many of them: drift hits both sides alike). */
const PIPE_CYCLES = n(4, 1);
const WARMUP = n(200, 20);

/**
 * The smallest honest QMP client: write a line, read a line; same capabilities (oob) as
 * QmpClient. It never looks into a reply; `parse` makes it JSON.parse each one, as any
 * client that uses the result must (a stricter baseline). `ids` says what it sends as ids:
 * `reuse` the bytes QmpClient sends (an id is used again once answered: 0 one call at a
 * time, 0-7 with 8 in flight), `counter` a number that never repeats (0..calls per block).
 * QEMU reads a monitor one byte per read (~2.5 us a byte here), so the request's length
 * is most of the round trip: the goal rows compare requests of identical bytes.
 */
class RawClient {
  private buf = '';
  private waiters: Array<(line: string) => void> = [];
  private lines: string[] = [];

  parse = false;
  ids: 'reuse' | 'counter' = 'reuse';
  /** Spaces inside the request (QEMU's JSON parser skips them): measures what a request byte costs. */
  pad = '';

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

  /** query-status with the i-th id of this block (reused ids: i modulo the calls in flight). */
  query(i: number, inFlight: number): void {
    this.write(`{"execute":"query-status",${this.pad}"id":${this.ids === 'reuse' ? i % inFlight : i}}\n`);
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

/** One query-status of raw client `c`, timed (ms). */
async function rawCall(c: RawClient, i: number): Promise<number> {
  const t0 = performance.now();
  c.query(i, 1);
  await c.readLine();
  return performance.now() - t0;
}

async function rawSequential(c: RawClient, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.query(i, 1);
    await c.readLine();
  }
}

async function rawPipelined(c: RawClient, n: number): Promise<void> {
  let sent = 0;
  for (; sent < Math.min(WINDOW, n); sent++) c.query(sent, WINDOW);
  for (let got = 0; got < n; got++) {
    await c.readLine();
    if (sent < n) c.query(sent++, WINDOW);
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

/** Wall ms and CPU us (user+sys of this process) of one block. */
async function timed(fn: () => Promise<void>): Promise<{ ms: number; cpuUs: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpuUs: c.user + c.system };
}

/** Quartiles of per-round ratios a[i] / b[i], as "q1-q3" text. */
function spread(a: readonly number[], b: readonly number[]): { median: number; text: string } {
  const r = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  const q = (f: number) => r[Math.min(r.length - 1, Math.floor(f * r.length))]!;
  return { median: q(0.5), text: `quartiles ${q(0.25).toFixed(2)}-${q(0.75).toFixed(2)}` };
}

/**
 * The blocks in a fresh order each round (a fixed PRNG, so runs repeat): a rotation keeps
 * each block's predecessor, and the garbage one side leaves is collected in the next block.
 */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let x = (seed + 1) * 2654435761 >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    x = (x * 1664525 + 1013904223) >>> 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

type Block = 'raw' | 'cli' | 'raw2' | 'counter' | 'parsed';
const BLOCKS: readonly Block[] = ['raw', 'cli', 'raw2', 'counter', 'parsed'];
/** One call at a time also: the raw client with PAD spaces in each request. */
type Call = Block | 'padded';
const CALLS: readonly Call[] = [...BLOCKS, 'padded'];
const PAD = 32;

async function run(): Promise<BenchRow[] | string> {
  const qemu = await startQemu({ monitors: 3 }).catch((e: Error) => e);
  if (qemu instanceof Error) return `cannot start QEMU: ${qemu.message}`;
  let raw: RawClient | undefined;
  let raw2: RawClient | undefined;
  let client: QmpClient | undefined;
  const disconnect = async () => { raw?.close(); raw2?.close(); await client?.close(); };
  try {
    const seq = Object.fromEntries(CALLS.map((b) => [b, [] as number[]])) as Record<Call, number[]>;
    const seqSum = Object.fromEntries(CALLS.map((b) => [b, 0])) as Record<Call, number>;
    const pipe = Object.fromEntries(BLOCKS.map((b) => [b, [] as number[]])) as Record<Block, number[]>;
    const cpu = { raw: [] as number[], cli: [] as number[] };
    const pipeCpu = { raw: [] as number[], cli: [] as number[] };
    const [seqN, pipeN] = [Math.round(SEQUENTIAL / ROUNDS), Math.round(PIPELINED / ROUNDS / PIPE_CYCLES)];
    for (let r = 0; r < ROUNDS; r++) {
      // Each round the three connections move to the next monitor, connect in a rotated
      // order (QEMU serves the connection it accepted first measurably faster, ~5%) and the
      // blocks run in a rotated order: no monitor, connection age or place in the round
      // favours one side.
      await disconnect();
      const sockets = qemu.sockets;
      const connectors = [
        async () => { raw = await RawClient.connect(sockets[r % 3]!); },
        async () => { client = await QmpClient.connect({ path: sockets[(r + 1) % 3]! }); },
        async () => { raw2 = await RawClient.connect(sockets[(r + 2) % 3]!); },
      ];
      for (let i = 0; i < 3; i++) await connectors[(r + i) % 3]!();
      const [a, c, b] = [raw!, client!, raw2!];
      await rawSequential(a, WARMUP);
      await rawSequential(b, WARMUP);
      await clientSequential(c, WARMUP);
      // One call at a time: the five sides call by call, in a rotating order.
      const call: Record<Call, (i: number) => Promise<number>> = {
        raw: (i) => rawCall(a, i),
        cli: async () => { const t0 = performance.now(); await c.execute('query-status'); return performance.now() - t0; },
        raw2: (i) => rawCall(b, i),
        counter: async (i) => { a.ids = 'counter'; try { return await rawCall(a, i); } finally { a.ids = 'reuse'; } },
        parsed: async (i) => { a.parse = true; try { return await rawCall(a, i); } finally { a.parse = false; } },
        padded: async (i) => { a.pad = ' '.repeat(PAD); try { return await rawCall(a, i); } finally { a.pad = ''; } },
      };
      for (let i = 0; i < seqN; i++) {
        for (let j = 0; j < CALLS.length; j++) {
          const k = CALLS[(i + j) % CALLS.length]!;
          const ms = await call[k](i);
          seq[k].push(ms);
          seqSum[k] += ms;
        }
      }
      const one: Record<Block, (p: boolean) => Promise<void>> = {
        raw: (p) => (p ? rawPipelined(a, pipeN) : rawSequential(a, seqN)),
        cli: (p) => (p ? clientPipelined(c, pipeN) : clientSequential(c, seqN)),
        raw2: (p) => (p ? rawPipelined(b, pipeN) : rawSequential(b, seqN)),
        counter: async (p) => { a.ids = 'counter'; try { await one.raw(p); } finally { a.ids = 'reuse'; } },
        parsed: async (p) => { a.parse = true; try { await one.raw(p); } finally { a.parse = false; } },
      };
      // CPU of this process per call, one call at a time: raw and client in blocks (CPU
      // time is what a busy host distorts least), then the pipelined blocks.
      for (const k of r % 2 === 0 ? ['raw', 'cli'] as const : ['cli', 'raw'] as const) cpu[k].push((await timed(() => one[k](false))).cpuUs / seqN);
      for (let cycle = 0; cycle < PIPE_CYCLES; cycle++) {
        for (const k of shuffled(BLOCKS, r * PIPE_CYCLES + cycle)) {
          const t = await timed(() => one[k](true));
          pipe[k].push(t.ms);
          if (k === 'raw' || k === 'cli') pipeCpu[k].push(t.cpuUs / pipeN);
        }
      }
    }
    const rawSchema = await medianMs(async () => { raw!.write('{"execute":"query-qmp-schema","id":"s"}\n'); await raw!.readLine(); }, 15, 2);
    const cliSchema = await medianMs(() => client!.execute('query-qmp-schema'), 15, 2);
    const calls = seqN * ROUNDS;
    const mean = (k: Call) => (seqSum[k] * 1000) / calls;
    const mid = (k: Call) => median(seq[k]) * 1000;
    const perSec = (xs: number[]) => pipeN / (median(xs) / 1000);
    // Per round: throughput ratios client/raw (raw time / client time).
    const [pipeCli, pipeAA] = [spread(pipe.raw, pipe.cli), spread(pipe.raw, pipe.raw2)];
    const rawBase = 'raw socket client, same request bytes';
    // The median call is the round trip; the mean adds the rare long calls (a preempted
    // process, a GC pause), which on this shared host move even the A/A pair apart.
    const seqName = `query-status sequential round trip, median of ${calls} calls alternating call by call (QmpClient)`;
    return [
      { group: 'qmp', name: seqName, value: mid('cli'), unit: 'us/call', baseline: { name: rawBase, value: mid('raw') }, goal: le(1.05) },
      { group: 'qmp', name: seqName, value: mid('cli'), unit: 'us/call', baseline: { name: 'the same raw client JSON.parsing each reply', value: mid('parsed') } },
      { group: 'qmp', name: seqName, value: mid('cli'), unit: 'us/call', baseline: { name: `raw client whose ids never repeat (0..${seqN - 1})`, value: mid('counter') } },
      { group: 'qmp', name: 'query-status sequential round trip, mean call (QmpClient)', value: mean('cli'), unit: 'us/call', baseline: { name: rawBase, value: mean('raw') } },
      { group: 'qmp', name: `QEMU's cost per request byte (it reads a monitor one byte per recvmsg): median call with ${PAD} spaces more, less without, / ${PAD}`, value: (mid('padded') - mid('raw')) / PAD, unit: 'us/byte' },
      { group: 'qmp', name: 'query-status sequential: CPU of this process per call (QmpClient)', value: median(cpu.cli), unit: 'us/call', baseline: { name: rawBase, value: median(cpu.raw) } },
      { group: 'qmp', name: `query-status pipelined, window ${WINDOW} (QmpClient, ${pipeN * ROUNDS * PIPE_CYCLES} calls)`, value: perSec(pipe.cli), unit: 'calls/s', baseline: { name: rawBase, value: perSec(pipe.raw) }, goal: ge(1.0) },
      { group: 'qmp', name: `query-status pipelined, window ${WINDOW} (QmpClient, ${pipeN * ROUNDS * PIPE_CYCLES} calls)`, value: perSec(pipe.cli), unit: 'calls/s', baseline: { name: `raw client whose ids never repeat (0..${pipeN - 1})`, value: perSec(pipe.counter) } },
      { group: 'qmp', name: `query-status pipelined: CPU of this process per call (QmpClient)`, value: median(pipeCpu.cli), unit: 'us/call', baseline: { name: rawBase, value: median(pipeCpu.raw) } },
      { group: 'qmp', name: 'query-qmp-schema, one ~200 KiB reply line (QmpClient, median of 15)', value: cliSchema, unit: 'ms/call', baseline: { name: 'raw socket client', value: rawSchema } },
      // The noise floor: a second, identical raw client, rotated through the monitors and the round alike.
      { group: 'qmp', name: 'A/A: a second raw client, one call at a time, median call', value: mid('raw2'), unit: 'us/call', baseline: { name: rawBase, value: mid('raw') } },
      { group: 'qmp', name: 'A/A: a second raw client, one call at a time, mean call', value: mean('raw2'), unit: 'us/call', baseline: { name: rawBase, value: mean('raw') } },
      { group: 'qmp', name: `A/A: a second raw client, window ${WINDOW} (${pipeN * ROUNDS * PIPE_CYCLES} calls)`, value: perSec(pipe.raw2), unit: 'calls/s', baseline: { name: rawBase, value: perSec(pipe.raw) } },
      { group: 'qmp', name: `window ${WINDOW}: per-block throughput ratio QmpClient/raw over ${ROUNDS * PIPE_CYCLES} blocks, ${pipeCli.text}; A/A raw/raw ${pipeAA.text}`, value: pipeCli.median, unit: 'x' },
    ];
  } finally {
    await disconnect().catch(() => {});
    await qemu.kill();
  }
}

export const benchmarks: Benchmark[] = [{ group: 'qmp', run }];
