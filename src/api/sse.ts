/**
 * @module api/sse: the /v1/events stream as Server-Sent Events. Each event has `id:
 * epoch-seq`; a client resuming with Last-Event-ID gets what it missed from the ring, or a
 * `resync` event when that is gone. A reader that falls behind is dropped (its socket is
 * closed): publishing never waits for a client, so a slow reader never blocks QMP.
 */
import type { ServerResponse } from 'node:http';
import { eventMatches, type VmEvent, type VmEvents } from '../vm/index.js';
import { canSee, type Caller } from './auth.js';

/** Bytes a client may have unread before it is dropped. */
export const SSE_MAX_BUFFERED = 1 << 20;
const HEARTBEAT_MS = 15_000;

export interface SseOptions {
  vm?: string[];
  type?: string[];
  lastEventId?: string;
}

function frame(e: VmEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

/** Streams events to `res` until the client goes; returns at once (the stream lives on). */
export function streamEvents(res: ServerResponse, events: VmEvents, caller: Caller, o: SseOptions, onDrop?: () => void): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
  const visible = (e: VmEvent): boolean => eventMatches(e, o) && (e.vm === null || canSee(caller, e.owner));
  let off = (): void => {};
  const send = (e: VmEvent): void => {
    if (res.destroyed || !visible(e)) return;
    res.write(frame(e));
    if (res.writableLength > SSE_MAX_BUFFERED) {
      off();
      onDrop?.();
      res.destroy(); // a slow reader loses its stream; it reconnects with Last-Event-ID
    }
  };
  res.write(': warden events\n\n');
  if (o.lastEventId !== undefined && o.lastEventId !== '') {
    const missed = events.since(o.lastEventId);
    if (missed === null) {
      res.write(`event: resync\ndata: ${JSON.stringify({ type: 'resync', epoch: events.epoch, reason: 'the events after the given id are gone (another daemon run, or too old): re-read the state' })}\n\n`);
    } else {
      for (const e of missed) send(e);
    }
  }
  off = events.subscribe(send);
  const beat = setInterval(() => { if (!res.destroyed) res.write(': keep-alive\n\n'); }, HEARTBEAT_MS);
  res.on('close', () => { off(); clearInterval(beat); });
}
