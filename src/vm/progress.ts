/** @module vm/progress: the terminal view of an operation: one line per step with its elapsed time. */
import type { Progress } from './steps.js';

export interface ProgressSink {
  err(text: string): void;
}

function fmt(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Step lines on stderr (so --json stdout stays clean): "  ✓ planning            12 ms". */
export function terminalProgress(sink: ProgressSink, title: string): Progress & { total(): number } {
  const t0 = performance.now();
  sink.err(title);
  return {
    step: () => {},
    done: (label, ms) => sink.err(`  ok   ${label.padEnd(34)} ${fmt(ms)}`),
    failed: (label, ms, err) => sink.err(`  FAIL ${label.padEnd(34)} ${fmt(ms)}: ${String((err as Error)?.message ?? err).split('\n')[0]}`),
    warn: (message) => sink.err(`  warning: ${message}`),
    info: (message) => sink.err(`  ${message}`),
    total: () => performance.now() - t0,
  };
}

export { fmt as formatMs };
