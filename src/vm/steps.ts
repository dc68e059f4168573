/**
 * @module vm/steps: an operation as a list of named steps, each with an optional undo; on
 * failure the steps already done are undone in reverse, and the first error is rethrown
 * with any undo failures attached. Progress is reported per step with elapsed times.
 */
import { VmError } from './errors.js';

export interface Step<C> {
  /** A stable name (recorded in state, used in tests and error contexts). */
  name: string;
  /** What the terminal shows while it runs. */
  label: string;
  run(ctx: C): Promise<void>;
  undo?(ctx: C): Promise<void>;
}

export interface Progress {
  /** An operation begins (a title line); later lines are timed from here. */
  begin(title: string): void;
  /** The operation ended; `message` is shown with the total elapsed time. */
  end(message: string): void;
  step(label: string): void;
  done(label: string, ms: number): void;
  failed(label: string, ms: number, err: unknown): void;
  warn(message: string): void;
  info(message: string): void;
}

export const silentProgress: Progress = {
  begin: () => {}, end: () => {}, step: () => {}, done: () => {}, failed: () => {}, warn: () => {}, info: () => {},
};

/** Test hook: called before each step runs, so fault injection can stop the run there. */
export type BeforeStep = (name: string) => void | Promise<void>;

export interface StepRun {
  /** Steps that ran to completion, in order. */
  done: string[];
  /** Milliseconds per completed step. */
  timings: Record<string, number>;
}

export async function runSteps<C>(steps: readonly Step<C>[], ctx: C, progress: Progress, before?: BeforeStep): Promise<StepRun> {
  const done: Step<C>[] = [];
  const timings: Record<string, number> = {};
  for (const step of steps) {
    const t0 = performance.now();
    progress.step(step.label);
    try {
      if (before) await before(step.name);
      await step.run(ctx);
    } catch (err) {
      progress.failed(step.label, performance.now() - t0, err);
      // The failed step may have done part of its work: its undo runs too (undos are idempotent).
      const undoErrors = await undoAll([...done, step], ctx, progress);
      if (undoErrors.length > 0 && err instanceof VmError) {
        err.context['undoFailures'] = undoErrors.map((e) => `${e.step}: ${String((e.error as Error)?.message ?? e.error)}`);
      }
      throw err;
    }
    timings[step.name] = performance.now() - t0;
    progress.done(step.label, timings[step.name]!);
    done.push(step);
  }
  return { done: done.map((s) => s.name), timings };
}

/** Runs every undo in reverse order; a failing undo does not stop the others. */
export async function undoAll<C>(steps: readonly Step<C>[], ctx: C, progress: Progress): Promise<Array<{ step: string; error: unknown }>> {
  const errors: Array<{ step: string; error: unknown }> = [];
  for (const step of [...steps].reverse()) {
    if (!step.undo) continue;
    try {
      await step.undo(ctx);
    } catch (error) {
      errors.push({ step: step.name, error });
      progress.warn(`undoing "${step.label}" failed: ${String((error as Error)?.message ?? error)}`);
    }
  }
  return errors;
}
