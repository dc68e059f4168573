/** @module bench/lib: the row type every benchmark returns, its goal, the quick mode, and timing helpers. */

/** A bound a row should meet: on the ratio to its baseline (`x`) or on its own value (in the row's unit). */
export interface Goal {
  op: '<=' | '>=';
  value: number;
  of: 'ratio' | 'value';
}

/** One measured quantity; `ratio` is value / baseline from the same run, where there is a baseline. */
export interface BenchRow {
  group: string;
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
  /** The goal for this row, printed beside it; never asserted (shared, noisy machine). */
  goal?: Goal;
}

export interface Benchmark {
  group: string;
  /** Returns rows, or a string saying why it was skipped. */
  run(): Promise<BenchRow[] | string>;
}

let quickMode = false;

/** Quick mode (`--quick`): few iterations and small scales, so CI runs the benchmark code to catch breakage. */
export function setQuick(on: boolean): void {
  quickMode = on;
}

export function isQuick(): boolean {
  return quickMode;
}

/** `full` normally, `quick` in quick mode: iteration counts and scales. */
export function n(full: number, quick: number): number {
  return quickMode ? quick : full;
}

export const le = (value: number, of: Goal['of'] = 'ratio'): Goal => ({ op: '<=', value, of });
export const ge = (value: number, of: Goal['of'] = 'ratio'): Goal => ({ op: '>=', value, of });

/** Whether the row meets its goal; undefined without a goal (or a ratio goal without a baseline). */
export function goalMet(r: BenchRow): boolean | undefined {
  if (r.goal === undefined) return undefined;
  const v = r.goal.of === 'value' ? r.value : r.baseline === undefined ? undefined : r.value / r.baseline.value;
  if (v === undefined || !Number.isFinite(v)) return undefined;
  return r.goal.op === '<=' ? v <= r.goal.value : v >= r.goal.value;
}

/** Median of a list (NaN when empty). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
}

/** Median wall time in ms of `fn` over `runs` runs after `warmup` unmeasured ones (quick mode: 2 runs, 1 warm-up at most). */
export async function medianMs(fn: () => Promise<unknown> | unknown, runs = 7, warmup = 1): Promise<number> {
  if (quickMode) { runs = Math.min(runs, 2); warmup = Math.min(warmup, 1); }
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/**
 * Median wall time in ms of each function, run in rounds (each round runs every function once,
 * in a rotating order), so a baseline and the thing measured see the same load on a shared host.
 */
export async function interleavedMedians<K extends string>(fns: Record<K, () => Promise<unknown>>, runs = 7, warmup = 1): Promise<Record<K, number>> {
  if (quickMode) { runs = Math.min(runs, 2); warmup = Math.min(warmup, 1); }
  const names = Object.keys(fns) as K[];
  const times = Object.fromEntries(names.map((k) => [k, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round < warmup + runs; round++) {
    for (let i = 0; i < names.length; i++) {
      const k = names[(round + i) % names.length]!;
      const t0 = performance.now();
      await fns[k]();
      if (round >= warmup) times[k].push(performance.now() - t0);
    }
  }
  return Object.fromEntries(names.map((k) => [k, median(times[k])])) as Record<K, number>;
}
