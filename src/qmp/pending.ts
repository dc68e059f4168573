/** @module qmp/pending: the table of commands awaiting replies: ids, per-command timers, and remembered timed-out ids. */
import { QmpError } from './errors.js';

interface Call {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  /** performance.now() after which the call times out; Infinity for none. */
  deadline: number;
  timeoutMs: number;
}

/** How many timed-out ids are remembered, so that their late replies are dropped quietly. */
const LATE_IDS = 1024;

/**
 * Every call is settled exactly once (reply, timeout, write failure or disconnect). One
 * timer serves every call: it is armed for the earliest deadline, so a round trip costs
 * no timer of its own (creating and clearing one per call was a measurable share of a
 * ~100 us query-status); with nothing pending it is unref'd, so it holds no process open.
 */
export class PendingCalls {
  private readonly calls = new Map<string, Call>();
  private readonly late = new Set<string>();
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  /** A fresh id; ids are strings we generate, never reused in one connection. */
  nextId(): string {
    return `w${++this.seq}`;
  }

  /** Registers a call; a timeout of 0 or Infinity means none. */
  add(id: string, command: string, timeoutMs: number): Promise<unknown> {
    const deadline = timeoutMs > 0 && Number.isFinite(timeoutMs) ? performance.now() + timeoutMs : Infinity;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { command, resolve, reject, deadline, timeoutMs });
      if (deadline < this.armedFor) this.arm(deadline);
      else if (deadline !== Infinity) this.timer?.ref();
    });
  }

  /** The command name of a pending id, or undefined. */
  commandOf(id: unknown): string | undefined {
    return typeof id === 'string' ? this.calls.get(id)?.command : undefined;
  }

  has(id: string): boolean {
    return this.calls.has(id);
  }

  /** True once for an id that timed out (its late reply is expected and dropped). */
  forgetLate(id: unknown): boolean {
    return typeof id === 'string' && this.late.delete(id);
  }

  resolve(id: string, value: unknown): void {
    this.take(id)?.resolve(value);
  }

  reject(id: string, error: Error): void {
    this.take(id)?.reject(error);
  }

  /** Rejects every pending call with an error made for it. */
  rejectAll(makeError: (command: string, id: string) => Error): void {
    for (const [id, call] of [...this.calls]) this.reject(id, makeError(call.command, id));
  }

  get size(): number {
    return this.calls.size;
  }

  private take(id: string): Call | undefined {
    const call = this.calls.get(id);
    if (call === undefined) return undefined;
    this.calls.delete(id);
    if (this.calls.size === 0) this.timer?.unref();
    return call;
  }

  private arm(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = deadline;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, deadline - performance.now()));
  }

  /** Times out every call whose deadline passed (within the 1 ms timers round to), then re-arms for the next. */
  private sweep(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = performance.now() + 1;
    let next = Infinity;
    for (const [id, call] of [...this.calls]) {
      if (call.deadline <= now) this.expire(id, call.timeoutMs);
      else if (call.deadline < next) next = call.deadline;
    }
    if (next !== Infinity && this.calls.size > 0) this.arm(next);
  }

  private expire(id: string, timeoutMs: number): void {
    const command = this.calls.get(id)?.command;
    if (command === undefined) return;
    this.late.add(id);
    if (this.late.size > LATE_IDS) this.late.delete(this.late.values().next().value as string);
    this.reject(id, new QmpError('QMP_TIMEOUT', `running ${command} failed: no reply within ${timeoutMs} ms`, {
      command, context: { id, timeoutMs },
      suggestions: ['the command may still run inside QEMU: re-query the state before retrying'],
    }));
  }
}
