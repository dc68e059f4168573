/** @module vm/open: a VmManager wired to the real backends for a state root (the CLI, the demo and the benchmarks use it). */
import { NodeFs } from '../sys/index.js';
import { realBackends, type RealBackendOptions } from './backends.js';
import { VmManager } from './manager.js';
import { terminalProgress } from './progress.js';
import { silentProgress, type Progress } from './steps.js';
import { StateStore, defaultStateRoot } from './store.js';

export interface OpenOptions {
  stateDir?: string | undefined;
  /** Where step lines go (stderr in the CLI); silent when absent. */
  progress?: Progress | { err(text: string): void };
  backends?: Omit<RealBackendOptions, 'stateRoot'>;
  /** Fault injection for tests: the process SIGKILLs itself just before this start step. */
  dieBefore?: string | undefined;
}

export function openManager(o: OpenOptions = {}): VmManager {
  const root = o.stateDir ?? defaultStateRoot();
  const fs = new NodeFs();
  const p = o.progress;
  const progress = p === undefined ? silentProgress : 'begin' in p ? p : terminalProgress(p);
  const die = o.dieBefore ?? process.env['WARDEN_TEST_DIE_BEFORE'];
  return new VmManager({
    store: new StateStore(root, fs), fs, progress,
    backends: realBackends({ stateRoot: root, ...o.backends }),
    ...(die ? { beforeStep: (name: string) => { if (name === die) process.kill(process.pid, 'SIGKILL'); } } : {}),
  });
}
