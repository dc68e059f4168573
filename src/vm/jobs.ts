/**
 * @module vm/jobs: the per-VM job queue (one verb at a time per VM, in arrival order, as
 * libvirt's job does) and the daemon's operations: a verb that outlives its request, with
 * an id to poll or wait on, kept a while after it ends.
 */
import type { Requestor } from './events.js';

/** Runs jobs one after another; a failed job does not stop the queue. */
export class JobQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const p = this.tail.then(fn).finally(() => { this.waiting--; });
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** Jobs queued or running. */
  get depth(): number {
    return this.waiting;
  }
}

export type OperationStatus = 'running' | 'succeeded' | 'failed';

export interface Operation {
  id: string;
  vm: string;
  action: string;
  status: OperationStatus;
  createdAt: string;
  finishedAt?: string;
  requestor?: Requestor;
  result?: unknown;
  error?: Record<string, unknown>;
}

/** Finished operations are kept at least this long (and the newest `maxKept` of them beyond). */
export const OPERATION_KEEP_MS = 5 * 60_000;

export class Operations {
  private readonly ops = new Map<string, { op: Operation; done: Promise<void>; endedAt?: number }>();
  private n = 0;

  constructor(private readonly prefix: string, private readonly maxKept = 1000) {}

  /** Registers `work` as an operation; it runs regardless of whether anyone waits. */
  start(vm: string, action: string, requestor: Requestor | undefined, work: () => Promise<unknown>, toJson: (err: unknown) => Record<string, unknown>,
    onEnd?: (op: Operation) => void): Operation {
    this.prune();
    const op: Operation = { id: `${this.prefix}-${++this.n}`, vm, action, status: 'running', createdAt: new Date().toISOString(), ...(requestor ? { requestor } : {}) };
    const entry: { op: Operation; done: Promise<void>; endedAt?: number } = { op, done: Promise.resolve() };
    entry.done = work().then(
      (result) => { op.status = 'succeeded'; op.result = result; },
      (err: unknown) => { op.status = 'failed'; op.error = toJson(err); },
    ).finally(() => { op.finishedAt = new Date().toISOString(); entry.endedAt = Date.now(); onEnd?.(op); });
    this.ops.set(op.id, entry);
    return op;
  }

  get(id: string): Operation | undefined {
    return this.ops.get(id)?.op;
  }

  /** The operation once finished, or as it is after `timeoutMs`. */
  async wait(id: string, timeoutMs: number): Promise<Operation | undefined> {
    const e = this.ops.get(id);
    if (e === undefined) return undefined;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([e.done, new Promise<void>((r) => { timer = setTimeout(r, timeoutMs); })]);
    clearTimeout(timer);
    return e.op;
  }

  list(): Operation[] {
    return [...this.ops.values()].map((e) => e.op);
  }

  private prune(): void {
    const now = Date.now();
    const ended = [...this.ops.values()].filter((e) => e.endedAt !== undefined);
    const excess = ended.length - this.maxKept;
    ended.forEach((e, i) => {
      if (now - e.endedAt! > OPERATION_KEEP_MS || i < excess) this.ops.delete(e.op.id);
    });
  }
}
