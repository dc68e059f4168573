/** @module image/fuzz: the header fuzzer: mutates real headers and checks that only ImageError escapes, reads stay within the bound, and each case is fast. */
import { ImageError } from './errors.js';
import { IMAGE_FORMATS } from './formats/names.js';
import { MemorySource } from './memory.js';
import { MAX_HEADER_BYTES, readImageInfo } from './reader.js';
import type { ImageFormat } from './types.js';

export interface FuzzSeed {
  name: string;
  bytes: Uint8Array;
  /** The seed's own format: forced in a share of the cases so mutations get past the magic. */
  format: ImageFormat;
}

export interface FuzzReport {
  cases: number;
  accepted: number;
  refusedByCode: Record<string, number>;
  /** Cases that broke a rule: an escaped non-ImageError, a read past the bound, or a slow case. */
  failures: Array<{ seed: string; caseNo: number; why: string }>;
  maxMs: number;
  over5ms: number;
  maxBytesRead: number;
}

/** A small deterministic PRNG (xorshift32), so a failing case can be replayed from its seed and number. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 2 ** 32;
  };
}

const INTERESTING = [0, 1, 2, 7, 8, 9, 16, 21, 63, 64, 511, 512, 4096, 65535, 65536, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

/**
 * A mutated image without copying the seed (some seeds are megabytes): the seed, a
 * length (truncation) and byte patches laid over it when read.
 */
export class Mutant {
  readonly patches = new Map<number, number>();
  constructor(readonly base: Uint8Array, public length: number) {}

  get(at: number): number {
    return this.patches.get(at) ?? this.base[at] ?? 0;
  }
  set(at: number, value: number): void {
    if (at >= 0 && at < this.length) this.patches.set(at, value & 0xff);
  }
  /** The mutated bytes as one array (for writing a case to a file). */
  materialize(): Uint8Array {
    const out = this.base.slice(0, this.length);
    for (const [at, v] of this.patches) if (at < out.length) out[at] = v;
    return out;
  }
  /** Writes an unsigned integer of `width` bytes. */
  put(at: number, value: bigint, width: number, le: boolean): void {
    for (let i = 0; i < width; i++) this.set(le ? at + i : at + width - 1 - i, Number((value >> BigInt(8 * i)) & 0xffn));
  }
}

/** A ByteSource over a Mutant that counts what it serves (like MemorySource). */
class MutantSource extends MemorySource {
  constructor(private readonly m: Mutant) {
    super(m.base, m.length);
  }
  override async read(offset: number, length: number): Promise<Uint8Array> {
    const out = await super.read(offset, Math.max(0, Math.min(length, this.m.length - offset)));
    for (const [at, v] of this.m.patches) if (at >= offset && at < offset + out.length) out[at - offset] = v;
    return out;
  }
}

type Mutator = (m: Mutant, r: () => number) => void;
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
/** An offset biased to the first KiB (where header fields live) and the last KiB (VPC and DMG trailers). */
function spot(m: Mutant, r: () => number): number {
  if (m.length === 0) return 0;
  const zone = r();
  if (zone < 0.6) return Math.floor(r() * Math.min(m.length, 1024));
  if (zone < 0.8) return Math.max(0, m.length - 1 - Math.floor(r() * Math.min(m.length, 1024)));
  return Math.floor(r() * m.length);
}

const MUTATORS: Mutator[] = [
  (m, r) => { const at = spot(m, r); m.set(at, m.get(at) ^ (1 << Math.floor(r() * 8))); },
  (m, r) => { for (let i = 0; i < 8; i++) m.set(spot(m, r), Math.floor(r() * 256)); },
  (m, r) => m.put(spot(m, r) & ~3, BigInt(pick(r, INTERESTING)), 4, r() < 0.5),
  (m, r) => m.put(spot(m, r) & ~7, BigInt(pick(r, INTERESTING)) << BigInt(pick(r, [0, 9, 20, 32, 40])), 8, r() < 0.5),
  (m, r) => { m.length = Math.floor(r() * m.length); },
  (m, r) => { const at = spot(m, r); const v = pick(r, [0, 0xff, 0x22, 0x0a]); for (let i = Math.floor(r() * 64); i > 0; i--) m.set(at + i, v); },
];

/** One mutated case: 1-3 mutations of one seed, and a format to force (or null: probe). */
function makeCase(seeds: readonly FuzzSeed[], r: () => number): { seed: FuzzSeed; mutant: Mutant; format: ImageFormat | null } {
  const seed = pick(r, seeds);
  const mutant = new Mutant(seed.bytes, seed.bytes.length);
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) pick(r, MUTATORS)(mutant, r);
  const roll = r();
  const format = roll < 0.4 ? null : roll < 0.85 ? seed.format : pick(r, IMAGE_FORMATS);
  return { seed, mutant, format };
}

/** The cases a run with this seed makes, in order (the differential check replays them against qemu-img). */
export function* fuzzCases(seeds: readonly FuzzSeed[], cases: number, seed = 1): Generator<{ caseNo: number; seed: FuzzSeed; mutant: Mutant; format: ImageFormat | null }> {
  const r = rng(seed);
  for (let caseNo = 0; caseNo < cases; caseNo++) yield { caseNo, ...makeCase(seeds, r) };
}

/** Wall time of one more read of a mutant, whatever its outcome. */
async function timeCase(mutant: Mutant, format: Parameters<typeof readImageInfo>[1]): Promise<number> {
  const t0 = performance.now();
  await readImageInfo(new MutantSource(mutant), format).catch(() => undefined);
  return performance.now() - t0;
}

/** Runs `cases` mutated headers through the prober; `slowMs` marks a case as a failure. */
export async function runFuzz(seeds: readonly FuzzSeed[], cases: number, seed = 1, slowMs = 50): Promise<FuzzReport> {
  const rep: FuzzReport = { cases, accepted: 0, refusedByCode: {}, failures: [], maxMs: 0, over5ms: 0, maxBytesRead: 0 };
  for (const c of fuzzCases(seeds, cases, seed)) {
    const caseNo = c.caseNo;
    const src = new MutantSource(c.mutant);
    const t0 = performance.now();
    try {
      await readImageInfo(src, c.format);
      rep.accepted++;
    } catch (err) {
      if (err instanceof ImageError) rep.refusedByCode[err.code] = (rep.refusedByCode[err.code] ?? 0) + 1;
      else rep.failures.push({ seed: c.seed.name, caseNo, why: `escaped: ${String(err)}` });
    }
    let ms = performance.now() - t0;
    // A slow case is timed again: an input that is really slow is slow every time, while a
    // scheduler or GC pause on a loaded machine is not.
    for (let retry = 0; retry < 2 && ms > slowMs; retry++) ms = Math.min(ms, await timeCase(c.mutant, c.format));
    rep.maxMs = Math.max(rep.maxMs, ms);
    if (ms > 5) rep.over5ms++;
    if (ms > slowMs) rep.failures.push({ seed: c.seed.name, caseNo, why: `took ${ms.toFixed(1)} ms` });
    rep.maxBytesRead = Math.max(rep.maxBytesRead, src.bytesServed);
    if (src.bytesServed > MAX_HEADER_BYTES) rep.failures.push({ seed: c.seed.name, caseNo, why: `read ${src.bytesServed} bytes` });
  }
  return rep;
}
