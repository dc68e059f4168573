import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { QmpClient } from './client.js';
import type { QmpWarning } from './client.js';
import { QmpError } from './errors.js';
import { FakeQmpPeer } from './testing/fake-peer.js';
import type { FakePeerOptions } from './testing/fake-peer.js';

async function setup(t: { after: (fn: () => Promise<void>) => void }, options: FakePeerOptions = {}) {
  const peer = await FakeQmpPeer.start(options);
  t.after(() => peer.close());
  return peer;
}

const code = (c: string) => (e: unknown) => e instanceof QmpError && e.code === c;
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

/** Waits for a condition the peer reaches asynchronously (a fixed sleep flakes on a loaded host). */
async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('negotiates oob when offered and correlates replies by id, not by order', async (t) => {
  const peer = await setup(t, { capabilities: ['oob'] });
  const held: Array<() => void> = [];
  peer.script = (cmd, conn) => held.push(() => conn.reply(cmd, { name: cmd.arguments?.['n'] }));
  const client = await QmpClient.connect({ path: peer.path });
  t.after(() => client.close());
  assert.deepEqual(peer.received[0]?.arguments, { enable: ['oob'] });
  assert.deepEqual(client.capabilities, ['oob']);
  const calls = [1, 2, 3].map((n) => client.executeUntyped('x', { n }));
  await until(() => held.length === 3, 'the peer holds all three commands');
  held.reverse().forEach((f) => f());
  assert.deepEqual(await Promise.all(calls), [{ name: 1 }, { name: 2 }, { name: 3 }]);
});

test('an event sent before the reply reaches a subscription made before the command', async (t) => {
  const peer = await setup(t);
  peer.script = (cmd, conn) => {
    conn.send({ event: 'RESUME', timestamp: { seconds: 1, microseconds: 0 } });
    conn.reply(cmd);
  };
  const client = await QmpClient.connect({ path: peer.path });
  t.after(() => client.close());
  const sub = client.events(['RESUME']);
  await client.execute('cont');
  assert.equal((await sub.next({ timeoutMs: 1000 })).event, 'RESUME');
});

test('garbage JSON fails the connection and every pending call with QMP_PROTOCOL', async (t) => {
  const peer = await setup(t);
  let n = 0;
  peer.script = (_cmd, conn) => { if (++n === 2) conn.sendRaw('{"return": {}, "id": \r\n'); };
  const client = await QmpClient.connect({ path: peer.path });
  const calls = [client.execute('query-status'), client.execute('query-status')];
  for (const c of calls) await assert.rejects(c, code('QMP_PROTOCOL'));
  assert.ok((await client.closed)?.code === 'QMP_PROTOCOL');
  assert.equal(client.pendingCount, 0);
  await assert.rejects(client.execute('query-status'), code('QMP_DISCONNECTED'));
});

test('a line over the bound fails the connection without buffering the rest', async (t) => {
  const peer = await setup(t);
  let sent = 0;
  peer.script = (_cmd, conn) => {
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const pump = () => {
      while (sent < 64 * 1024 * 1024 && !conn.socket.destroyed) {
        sent += chunk.length;
        if (!conn.socket.write(chunk)) return void conn.socket.once('drain', pump);
      }
    };
    conn.sendRaw('{"return": "');
    pump();
  };
  const client = await QmpClient.connect({ path: peer.path }, { maxLineBytes: 256 * 1024 });
  await assert.rejects(client.execute('query-status'), (e: QmpError) => e.code === 'QMP_PROTOCOL' && e.cause instanceof QmpError && e.cause.context['maxLineBytes'] === 256 * 1024);
  await client.closed;
  assert.ok(sent < 64 * 1024 * 1024, `the client hung up long before the peer's 64 MiB line ended (peer wrote ${sent} bytes)`);
});

test('a reply with an unknown id is dropped with a warning; the real reply still resolves', async (t) => {
  const peer = await setup(t);
  peer.script = (cmd, conn) => {
    conn.send({ return: { bogus: true }, id: 'not-ours' });
    conn.send({ return: { bogus: true }, id: 17 });
    conn.reply(cmd, { status: 'running' });
  };
  const warnings: QmpWarning[] = [];
  const client = await QmpClient.connect({ path: peer.path }, { onWarning: (w) => warnings.push(w) });
  t.after(() => client.close());
  assert.deepEqual(await client.executeUntyped('query-status'), { status: 'running' });
  assert.deepEqual(warnings.map((w) => [w.kind, w.id]), [['unknown-id', 'not-ours'], ['unknown-id', 17]]);
  assert.ok(client.isOpen);
});

test('an error reply without an id is fatal: nothing can be routed after it', async (t) => {
  const peer = await setup(t);
  peer.script = (_cmd, conn) => conn.send({ error: { class: 'GenericError', desc: 'JSON parse error' } });
  const client = await QmpClient.connect({ path: peer.path });
  await assert.rejects(client.execute('stop'), (e: QmpError) => e.code === 'QMP_PROTOCOL' && e.command === 'stop');
  assert.equal((await client.closed)?.code, 'QMP_PROTOCOL');
});

test('a hang-up mid-reply fails every pending call with QMP_DISCONNECTED and raises nothing unhandled', async (t) => {
  const peer = await setup(t);
  let n = 0;
  peer.script = (_cmd, conn) => {
    if (++n < 3) return;
    conn.sendRaw('{"return": {"status": "runn');
    setTimeout(() => conn.hangUp(), 10);
  };
  const client = await QmpClient.connect({ path: peer.path });
  const sub = client.events('all');
  const calls = [client.execute('query-status'), client.execute('stop'), client.execute('cont')];
  const results = await Promise.allSettled(calls);
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal((r as PromiseRejectedResult).reason.code, 'QMP_DISCONNECTED');
  }
  const reason = await client.closed;
  assert.equal(reason?.code, 'QMP_DISCONNECTED');
  assert.equal(reason?.context['partialLineBytes'], 27);
  await assert.rejects(sub.next(), code('QMP_DISCONNECTED'));
  assert.equal(client.pendingCount, 0);
});

test('a peer that never answers: the timeout fires, nothing stays pending, the late reply is dropped', async (t) => {
  const peer = await setup(t);
  const silent: Array<() => void> = [];
  peer.script = (cmd, conn) => {
    if (cmd.execute === 'stop') silent.push(() => conn.reply(cmd));
    else conn.reply(cmd, { ok: cmd.execute });
  };
  const warnings: QmpWarning[] = [];
  const client = await QmpClient.connect({ path: peer.path }, { onWarning: (w) => warnings.push(w) });
  t.after(() => client.close());
  const before = timers();
  await assert.rejects(client.execute('stop', undefined, { timeoutMs: 30 }), (e: QmpError) =>
    e.code === 'QMP_TIMEOUT' && e.command === 'stop' && e.context['timeoutMs'] === 30);
  assert.equal(client.pendingCount, 0);
  assert.equal(timers(), before, 'no timer left behind');
  await until(() => silent.length === 1, 'the peer has received the stop');
  silent.forEach((f) => f());
  assert.deepEqual(await client.executeUntyped('query-status'), { ok: 'query-status' });
  assert.deepEqual(warnings.map((w) => w.kind), ['late-reply']);
  assert.ok(client.isOpen, 'a timeout does not end the connection');
});

test('ids are short and used again once answered; an id left unanswered (timed out) is never used again', async (t) => {
  const peer = await setup(t);
  const silent: Array<() => void> = [];
  peer.script = (cmd, conn) => {
    if (cmd.execute === 'stop') silent.push(() => conn.reply(cmd));
    else conn.reply(cmd, { id: cmd.id });
  };
  const warnings: QmpWarning[] = [];
  const client = await QmpClient.connect({ path: peer.path }, { onWarning: (w) => warnings.push(w) });
  t.after(() => client.close());
  // One call at a time: the same one-digit id every time.
  for (let i = 0; i < 3; i++) assert.deepEqual(await client.executeUntyped('query-status'), { id: 0 });
  // In flight together: distinct ids.
  const both = await Promise.all([client.executeUntyped('query-status'), client.executeUntyped('query-status')]);
  assert.notEqual((both[0] as { id: number }).id, (both[1] as { id: number }).id);
  await assert.rejects(client.execute('stop', undefined, { timeoutMs: 30 }), code('QMP_TIMEOUT'));
  const stopId = peer.received.find((c) => c.execute === 'stop')!.id;
  const later = [];
  for (let i = 0; i < 4; i++) later.push(((await client.executeUntyped('query-status')) as { id: number }).id);
  assert.ok(!later.includes(stopId as number), `the timed-out id ${String(stopId)} was used again: ${later.join(',')}`);
  // Its late reply is recognised as late, not taken for the answer to a newer command.
  const pendingNow = client.executeUntyped('query-status');
  await until(() => silent.length === 1, 'the peer has received the stop');
  silent.forEach((f) => f());
  assert.notEqual(((await pendingNow) as { id: number }).id, stopId);
  assert.deepEqual(warnings.map((w) => [w.kind, w.id]), [['late-reply', stopId]]);
  assert.ok(/"id":\d+\}$/.test(JSON.stringify(peer.received.at(-1))), 'the id is a plain number');
});

test('a reply QEMU misroutes to the next connection (a command left running by a client that went away) is never taken for an answer there', async (t) => {
  // QEMU 7.2 sends a coroutine command's reply (block_resize, screendump) to whichever client
  // is connected when it finishes; it runs requests in order, so that reply comes before the
  // next client's qmp_capabilities is answered.
  const peer = await setup(t, { autoNegotiate: false });
  let stale: { id?: unknown } | undefined;
  peer.script = (cmd, conn) => {
    if (cmd.execute === 'block_resize') { stale = cmd; return; }
    if (cmd.execute === 'qmp_capabilities') {
      if (stale === undefined || peer.connections.length !== 2) { conn.reply(cmd); return; }
      conn.send({ return: { answerTo: 'block_resize' }, id: stale.id });
      setTimeout(() => conn.reply(cmd), 50); // in a read of its own
      return;
    }
    conn.reply(cmd, { answerTo: cmd.execute });
  };
  const first = await QmpClient.connect({ path: peer.path });
  await assert.rejects(first.execute('block_resize', { 'node-name': 'd', size: 1 }, { timeoutMs: 30 }), code('QMP_TIMEOUT'));
  first.close();
  const warnings: QmpWarning[] = [];
  const second = await QmpClient.connect({ path: peer.path }, { onWarning: (w) => warnings.push(w) });
  t.after(() => second.close());
  for (const name of ['query-status', 'query-block', 'query-name']) assert.deepEqual(await second.executeUntyped(name), { answerTo: name });
  assert.deepEqual(warnings.map((w) => w.kind), ['unknown-id']);
});

test('a peer that never greets: connect fails with QMP_CONNECT within its budget and closes the socket', async (t) => {
  const peer = await setup(t, { greet: false });
  await assert.rejects(QmpClient.connect({ path: peer.path }, { timeoutMs: 50 }), (e: QmpError) =>
    e.code === 'QMP_CONNECT' && /no greeting/.test(e.message) && e.suggestions.length > 0);
  await until(() => peer.connections[0]?.socket.destroyed === true || peer.connections[0]?.socket.readableEnded === true, 'the peer sees the client close its end');
});

test('connecting to a path where nothing listens fails with QMP_CONNECT naming the path', async (t) => {
  const peer = await setup(t);
  const path = `${peer.dir}/absent.sock`;
  await assert.rejects(QmpClient.connect({ path }), (e: QmpError) => e.code === 'QMP_CONNECT' && e.context['path'] === path);
});

test('close() fails pending calls and ends subscriptions; later calls fail at once', async (t) => {
  const peer = await setup(t);
  const client = await QmpClient.connect({ path: peer.path });
  const sub = client.events(['STOP']);
  const pending = assert.rejects(client.execute('query-status'), code('QMP_DISCONNECTED'));
  await client.close();
  await pending;
  assert.equal(await client.closed, undefined, 'a close by the client is not an error');
  const seen: unknown[] = [];
  for await (const e of sub) seen.push(e);
  assert.deepEqual(seen, []);
  await assert.rejects(client.execute('query-status'), code('QMP_DISCONNECTED'));
});

test('a peer that stops reading: an fd-carrying call that times out in the queue is never sent later', async (t) => {
  const peer = await setup(t);
  peer.script = (cmd, conn) => conn.reply(cmd);
  const client = await QmpClient.connect({ path: peer.path });
  t.after(() => client.close());
  const conn = peer.connections[0]!;
  conn.socket.pause();
  const pad = 'x'.repeat(64 * 1024);
  const flood = Array.from({ length: 64 }, () => client.executeUntyped('query-status', { pad }, { timeoutMs: 0 }));
  const fd = openSync(peer.dir, 'r');
  await assert.rejects(client.execute('getfd', { fdname: 'late' }, { fds: [fd], timeoutMs: 50 }), code('QMP_TIMEOUT'));
  // The caller closes its fd once the call settled; the number is soon reused for another file.
  closeSync(fd);
  const reused = openSync(peer.dir, 'r');
  t.after(async () => closeSync(reused));
  conn.socket.resume();
  await Promise.all(flood);
  assert.deepEqual(await client.executeUntyped('query-status'), {});
  assert.equal(peer.received.filter((c) => c.execute === 'getfd').length, 0, 'the timed-out getfd and its fd never went out');
  assert.equal(peer.received.filter((c) => c.execute === 'query-status').length, 65);
});
