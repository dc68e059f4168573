/** @module qmp/pending: the table of commands awaiting replies: short reused ids, one timer for every deadline, and remembered timed-out ids. */
import { QmpError } from './errors.js';

export interface Call {
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
 * Ids are small integers, and an id is used again once QEMU has answered it: QEMU reads a
 * monitor one byte per read (monitor_can_read allows 1), about 2 us a byte here, so each
 * byte of a request is on the round trip's critical path, and `"id":0` is 4-6 bytes
 * shorter than a counter that never repeats (`"id":"w1234"`). An id that left without an
 * answer (timed out, its write failed, the connection ended) is never used again in this
 * connection, so a late reply can never be taken for the answer to a newer command.
 *
 * Every call is settled exactly once (reply, timeout, write failure or disconnect). One
 * timer serves every call: it is armed for the earliest deadline, so a round trip costs
 * no timer of its own (creating and clearing one per call was a measurable share of a
 * ~100 us query-status). The timer is unref'd: it never holds the process open by itself
 * (the open socket does, and a pending call ends when the socket closes); so a round trip
 * does not toggle its ref either.
 */
export class PendingCalls {
  private readonly calls = new Map<number, Call>();
  private readonly late = new Set<number>();
  /** Answered ids, free to use again (a stack: the smallest recent ones come back first). */
  private readonly free: number[] = [];
  private fresh = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  /** An id no pending call has and no unanswered call ever had (see above). */
  nextId(): number {
    return this.free.pop() ?? this.fresh++;
  }

  /** Registers a call under an id from nextId(); a timeout of 0 or Infinity means none. */
  add(id: number, command: string, timeoutMs: number): Promise<unknown> {
    const deadline = timeoutMs > 0 && Number.isFinite(timeoutMs) ? performance.now() + timeoutMs : Infinity;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { command, resolve, reject, deadline, timeoutMs });
      if (deadline < this.armedFor) this.arm(deadline);
    });
  }

  /** The pending call QEMU answered with `id`, taken out of the table (the id is free again); undefined when none. */
  answer(id: unknown): Call | undefined {
    if (typeof id !== 'number') return undefined;
    const call = this.take(id);
    if (call !== undefined && id >= 0) this.free.push(id);
    return call;
  }

  /** Stops the timer (the connection ended). */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
  }

  has(id: number): boolean {
    return this.calls.has(id);
  }

  /** True once for an id that timed out (its late reply is expected and dropped); answered now, the id is free again. */
  forgetLate(id: unknown): boolean {
    if (typeof id !== 'number' || !this.late.delete(id)) return false;
    this.free.push(id);
    return true;
  }

  /** Settles a call with QEMU's answer; its id is free again. */
  resolve(id: number, value: unknown): void {
    this.answer(id)?.resolve(value);
  }

  /** Fails a call that QEMU did not answer (write failure, disconnect): its id is retired. */
  reject(id: number, error: Error): void {
    this.take(id)?.reject(error);
  }

  /** Rejects every pending call with an error made for it. */
  rejectAll(makeError: (command: string, id: number) => Error): void {
    for (const [id, call] of [...this.calls]) this.reject(id, makeError(call.command, id));
  }

  get size(): number {
    return this.calls.size;
  }

  private take(id: number): Call | undefined {
    const call = this.calls.get(id);
    if (call === undefined) return undefined;
    this.calls.delete(id);
    return call;
  }

  private arm(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.armedFor = deadline;
    this.timer = setTimeout(() => this.sweep(), Math.max(0, deadline - performance.now())).unref();
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

  private expire(id: number, timeoutMs: number): void {
    const command = this.calls.get(id)?.command;
    if (command === undefined) return;
    this.late.add(id);
    // Forgotten, the id stays retired: its late reply then counts as an unknown id.
    if (this.late.size > LATE_IDS) this.late.delete(this.late.values().next().value as number);
    this.reject(id, new QmpError('QMP_TIMEOUT', `running ${command} failed: no reply within ${timeoutMs} ms`, {
      command, context: { id, timeoutMs },
      suggestions: ['the command may still run inside QEMU: re-query the state before retrying'],
    }));
  }
}
