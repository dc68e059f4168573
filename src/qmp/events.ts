/** @module qmp/events: bounded, async-iterable event subscriptions that can exist before the command that causes the event. */
import { QmpError } from './errors.js';
import type { QmpTimestamp } from './protocol.js';

/** An event as delivered to subscribers; `data` is `{}` when QEMU sent none. */
export interface RawQmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp: QmpTimestamp;
}

export const DEFAULT_EVENT_BUFFER = 1024;

export interface NextOptions<E> {
  /** Reject with QMP_TIMEOUT after this long (ms). No limit when absent. */
  timeoutMs?: number;
  /** Skip (and discard) events until one matches. */
  match?: (event: E) => boolean;
}

type Waiter<E> = { resolve: (e: E) => void; reject: (err: Error) => void; match: ((e: E) => boolean) | undefined };

/**
 * One subscriber's queue. At most `bufferSize` undelivered events are kept; on overflow
 * further events are dropped and, once the buffered ones are consumed, the subscription
 * fails with QMP_EVENTS_OVERFLOW, so a slow consumer learns it missed events instead of
 * blocking the connection or growing without bound.
 */
export class EventSubscription<E extends { event: string } = RawQmpEvent> implements AsyncIterable<E> {
  private readonly buffer: E[] = [];
  private waiter: Waiter<E> | undefined;
  private endError: QmpError | undefined;
  private ended = false;
  private dropped = 0;

  constructor(
    private readonly names: ReadonlySet<string> | 'all',
    readonly bufferSize: number,
    private readonly detach: (sub: EventSubscription<E>) => void,
  ) {}

  /** Called by the client for every event; cheap when the name does not match. */
  deliver(event: RawQmpEvent): void {
    if (this.ended || (this.names !== 'all' && !this.names.has(event.event))) return;
    const e = event as unknown as E;
    const w = this.waiter;
    if (w !== undefined && this.buffer.length === 0) {
      if (w.match !== undefined && !w.match(e)) return;
      this.waiter = undefined;
      return w.resolve(e);
    }
    if (this.buffer.length >= this.bufferSize) {
      this.dropped++;
      this.end(new QmpError('QMP_EVENTS_OVERFLOW', `delivering QMP events failed: the subscription buffer of ${this.bufferSize} events is full`, {
        context: { bufferSize: this.bufferSize, event: event.event },
        suggestions: ['consume events faster, or subscribe with a larger bufferSize'],
      }));
      return;
    }
    this.buffer.push(e);
  }

  /** Ends the subscription: buffered events can still be read, then `next()` rejects with `error`. */
  end(error: QmpError): void {
    if (this.ended) return;
    this.ended = true;
    this.endError = error;
    this.detach(this);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(error);
  }

  /** Stops receiving events (also what `break` in a for-await loop does). */
  close(): void {
    this.end(new QmpError('QMP_DISCONNECTED', 'waiting for a QMP event failed: the subscription was closed'));
  }

  /** The next (matching) event. Rejects with QMP_TIMEOUT, QMP_DISCONNECTED or QMP_EVENTS_OVERFLOW. */
  next(options: NextOptions<E> = {}): Promise<E> {
    const { match, timeoutMs } = options;
    while (this.buffer.length > 0) {
      const e = this.buffer.shift()!;
      if (match === undefined || match(e)) return Promise.resolve(e);
    }
    if (this.ended) return Promise.reject(this.endError);
    if (this.waiter !== undefined) return Promise.reject(new Error('EventSubscription.next() called while another next() is waiting'));
    return new Promise<E>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => { if (timer !== undefined) clearTimeout(timer); };
      this.waiter = { resolve: (e) => { done(); resolve(e); }, reject: (err) => { done(); reject(err); }, match };
      if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          this.waiter = undefined;
          reject(new QmpError('QMP_TIMEOUT', `waiting for a QMP event failed: none arrived within ${timeoutMs} ms`, {
            context: { timeoutMs, events: this.names === 'all' ? 'all' : [...this.names] },
          }));
        }, timeoutMs);
      }
    });
  }

  /** Events dropped because the buffer was full. */
  get droppedCount(): number {
    return this.dropped;
  }

  /** Iterates until the connection closes (the loop then ends) or the buffer overflows (it throws). */
  async *[Symbol.asyncIterator](): AsyncIterator<E> {
    try {
      for (;;) {
        try {
          yield await this.next();
        } catch (err) {
          if (err instanceof QmpError && err.code === 'QMP_DISCONNECTED') return;
          throw err;
        }
      }
    } finally {
      this.close();
    }
  }
}
