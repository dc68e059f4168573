/** @module bench/lib: the row type every benchmark returns, and timing helpers. */

/** One measured quantity; `ratio` is value / baseline from the same run, where there is a baseline. */
export interface BenchRow {
  group: string;
  name: string;
  value: number;
  unit: string;
  baseline?: { name: string; value: number };
}

export interface Benchmark {
  group: string;
  /** Returns rows, or a string saying why it was skipped. */
  run(): Promise<BenchRow[] | string>;
}

/** Median wall time in ms of `fn` over `runs` runs after `warmup` unmeasured ones. */
export async function medianMs(fn: () => Promise<unknown> | unknown, runs = 7, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}
