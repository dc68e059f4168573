/** @module vm/progress: the terminal view of an operation: one line per step with its elapsed time. */
import type { Progress } from './steps.js';

export interface ProgressSink {
  err(text: string): void;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** Step lines on stderr (so --json stdout stays clean): "  ok   planning   12 ms". */
export function terminalProgress(sink: ProgressSink): Progress {
  let t0 = performance.now();
  return {
    begin: (title) => { t0 = performance.now(); sink.err(title); },
    end: (message) => sink.err(`${message} (${formatMs(performance.now() - t0)})`),
    step: () => {},
    done: (label, ms) => sink.err(`  ok   ${label.padEnd(36)} ${formatMs(ms).padStart(8)}`),
    failed: (label, ms, err) => sink.err(`  FAIL ${label.padEnd(36)} ${formatMs(ms).padStart(8)}: ${String((err as Error)?.message ?? err).split('\n')[0]}`),
    warn: (message) => sink.err(`  warning: ${message}`),
    info: (message) => sink.err(`  ${message}`),
  };
}
