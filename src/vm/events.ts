/**
 * @module vm/events: the daemon's typed event stream: a bounded ring with a sequence number
 * per event and an epoch per daemon run, so a subscriber can resume after `epoch-seq` and is
 * told (`null` from `since`) when what it missed is gone. Publishing never waits on a subscriber.
 */
import type { ExitReason, Phase } from './machine.js';
import type { Progress } from './steps.js';

export const EVENT_TYPES = [
  'created', 'deleted', 'started', 'stopped', 'paused', 'resumed', 'restarting',
  'guest-panicked', 'block-io-error', 'device-deleted', 'operation', 'progress', 'resync', 'helper-died',
] as const;
export type VmEventType = (typeof EVENT_TYPES)[number];

/** Who asked: the peer credentials of the API caller (or this process for the CLI). */
export interface Requestor {
  uid: number;
  gid: number;
  pid: number;
}

export interface VmEvent {
  /** `epoch-seq`: the SSE id, what Last-Event-ID resumes from. */
  id: string;
  seq: number;
  epoch: string;
  time: string;
  type: VmEventType;
  vm: string | null;
  /** The VM's owner uid (the API shows an event only to those who may see the VM). */
  owner?: number;
  phase?: Phase;
  /** Why a VM stopped (stopped events), reusing the recorded exit reasons. */
  reason?: ExitReason;
  detail?: string;
  signal?: string | null;
  code?: number | null;
  operation?: string;
  requestor?: Requestor;
  data?: Record<string, unknown>;
}

export type EventDraft = Omit<VmEvent, 'id' | 'seq' | 'epoch' | 'time'>;

export type EventListener = (e: VmEvent) => void;

export class VmEvents {
  private readonly ring: VmEvent[] = [];
  private seq = 0;
  private readonly listeners = new Set<EventListener>();

  constructor(readonly epoch: string, private readonly capacity = 4096, private readonly now: () => string = () => new Date().toISOString()) {}

  publish(draft: EventDraft): VmEvent {
    const seq = ++this.seq;
    const e: VmEvent = { id: `${this.epoch}-${seq}`, seq, epoch: this.epoch, time: this.now(), ...draft };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const fn of [...this.listeners]) {
      try { fn(e); } catch { /* a listener's failure is its own (it drops its client) */ }
    }
    return e;
  }

  subscribe(fn: EventListener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Events after `lastId`; null when some are gone (another epoch, or older than the ring). */
  since(lastId: string): VmEvent[] | null {
    const m = /^(.*)-(\d+)$/.exec(lastId);
    if (m === null || m[1] !== this.epoch) return null;
    const after = Number(m[2]);
    const first = this.ring[0]?.seq ?? this.seq + 1;
    if (after < first - 1 || after > this.seq) return null;
    return this.ring.filter((e) => e.seq > after);
  }
}

/**
 * A Progress (steps.ts) that publishes each call as a `progress` event of VM `vm`, so any
 * subscriber (the CLI through the daemon, a UI) can show the steps as they happen.
 */
export function eventProgress(events: VmEvents, vm: string, owner: () => number | undefined): Progress {
  const pub = (data: Record<string, unknown>): void => {
    const o = owner();
    events.publish({ type: 'progress', vm, ...(o === undefined ? {} : { owner: o }), data });
  };
  return {
    begin: (message) => pub({ kind: 'begin', message }),
    end: (message) => pub({ kind: 'end', message }),
    step: (label) => pub({ kind: 'step', label }),
    done: (label, ms) => pub({ kind: 'done', label, ms }),
    failed: (label, ms, err) => pub({ kind: 'failed', label, ms, message: String((err as Error)?.message ?? err).split('\n')[0], code: (err as { code?: unknown })?.code }),
    warn: (message) => pub({ kind: 'warn', message }),
    info: (message) => pub({ kind: 'info', message }),
  };
}

/** Replays `progress` event data into a Progress (the inverse of eventProgress). */
export function replayProgress(p: Progress, data: Record<string, unknown>): void {
  const s = (k: string): string => String(data[k] ?? '');
  switch (data['kind']) {
    case 'begin': return p.begin(s('message'));
    case 'end': return p.end(s('message'));
    case 'step': return p.step(s('label'));
    case 'done': return p.done(s('label'), Number(data['ms']));
    case 'failed': return p.failed(s('label'), Number(data['ms']), new Error(s('message')));
    case 'warn': return p.warn(s('message'));
    case 'info': return p.info(s('message'));
    default: return undefined;
  }
}

/** Whether an event passes `?vm=&type=` filters (comma-separated lists; empty passes all). */
export function eventMatches(e: VmEvent, f: { vm?: readonly string[]; type?: readonly string[] }): boolean {
  if (e.type === 'resync') return true;
  if (f.vm !== undefined && f.vm.length > 0 && (e.vm === null || !f.vm.includes(e.vm))) return false;
  if (f.type !== undefined && f.type.length > 0 && !f.type.includes(e.type)) return false;
  return true;
}
