import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventSubscription } from './events.js';
import type { RawQmpEvent } from './events.js';
import { QmpError } from './errors.js';

const ev = (event: string, data: Record<string, unknown> = {}): RawQmpEvent => ({ event, data, timestamp: { seconds: 0, microseconds: 0 } });

function sub(names: string[] | 'all', size = 4) {
  const detached: unknown[] = [];
  const s = new EventSubscription(names === 'all' ? 'all' : new Set(names), size, (x) => detached.push(x));
  return { s, detached };
}

test('delivers only the subscribed names, in order, buffered or awaited', async () => {
  const { s } = sub(['STOP', 'RESUME']);
  s.deliver(ev('STOP'));
  s.deliver(ev('SHUTDOWN'));
  assert.equal((await s.next()).event, 'STOP', 'buffered before next()');
  const later = s.next();
  await assert.rejects(s.next(), /another next\(\) is waiting/, 'a second concurrent next() is refused');
  s.deliver(ev('RESUME'));
  assert.equal((await later).event, 'RESUME');
});

test('match skips other events; timeout rejects with QMP_TIMEOUT and the subscription stays usable', async () => {
  const { s } = sub('all');
  s.deliver(ev('DEVICE_DELETED', { device: 'a' }));
  s.deliver(ev('DEVICE_DELETED', { device: 'b' }));
  assert.equal((await s.next({ match: (e) => e.data['device'] === 'b' })).data['device'], 'b');
  await assert.rejects(s.next({ timeoutMs: 5 }), (e: QmpError) => e.code === 'QMP_TIMEOUT');
  s.deliver(ev('X'));
  assert.equal((await s.next()).event, 'X');
});

test('overflow drops further events and fails the subscription after the buffered ones', async () => {
  const { s, detached } = sub('all', 2);
  for (const name of ['A', 'B', 'C', 'D']) s.deliver(ev(name));
  assert.equal(s.droppedCount, 1);
  assert.equal(detached.length, 1, 'detached from the client at overflow');
  assert.equal((await s.next()).event, 'A');
  assert.equal((await s.next()).event, 'B');
  await assert.rejects(s.next(), (e: QmpError) => e.code === 'QMP_EVENTS_OVERFLOW');
});

test('for-await ends when the connection ends, and break detaches', async () => {
  const { s, detached } = sub('all');
  s.deliver(ev('A'));
  setImmediate(() => s.end(new QmpError('QMP_DISCONNECTED', 'gone')));
  const seen: string[] = [];
  for await (const e of s) seen.push(e.event);
  assert.deepEqual(seen, ['A']);
  const b = sub('all');
  b.s.deliver(ev('A'));
  b.s.deliver(ev('B'));
  for await (const e of b.s) { seen.push(e.event); break; }
  assert.equal(b.detached.length, 1);
  assert.equal(detached.length, 1);
});
