/**
 * @module vm/events: the daemon's typed event stream: a bounded ring with a sequence number
 * per event and an epoch per daemon run, so a subscriber can resume after `epoch-seq` and is
 * told (`null` from `since`) when what it missed is gone. Publishing never waits on a subscriber.
 */
import type { ExitReason, Phase } from './machine.js';

export const EVENT_TYPES = [
  'created', 'deleted', 'started', 'stopped', 'paused', 'resumed', 'restarting',
  'guest-panicked', 'block-io-error', 'device-deleted', 'operation', 'resync',
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

/** Whether an event passes `?vm=&type=` filters (comma-separated lists; empty passes all). */
export function eventMatches(e: VmEvent, f: { vm?: readonly string[]; type?: readonly string[] }): boolean {
  if (e.type === 'resync') return true;
  if (f.vm !== undefined && f.vm.length > 0 && (e.vm === null || !f.vm.includes(e.vm))) return false;
  if (f.type !== undefined && f.type.length > 0 && !f.type.includes(e.type)) return false;
  return true;
}
