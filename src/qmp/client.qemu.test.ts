import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { QmpClient } from './client.js';
import { QmpError } from './errors.js';
import { startQemu } from './testing/qemu.js';
import type { QemuOptions } from './testing/qemu.js';

type T = { after: (fn: () => Promise<void>) => void };

/** A real QEMU 7.2 (TCG, -S, -nodefaults) and a connected client; both go away in t.after. */
async function qemuWithClient(t: T, options: QemuOptions = {}) {
  const qemu = await startQemu(options);
  t.after(() => qemu.kill());
  const client = await QmpClient.connect({ path: qemu.sockets[0]! }, { timeoutMs: 10_000 });
  t.after(() => client.close());
  return { qemu, client };
}

test('greets, negotiates oob and answers query-status (real QEMU)', async (t) => {
  const { client } = await qemuWithClient(t);
  assert.equal(client.greeting.version.qemu.major >= 7, true);
  assert.ok(client.greeting.capabilities.includes('oob'));
  assert.deepEqual(client.capabilities, ['oob']);
  const status = await client.execute('query-status');
  assert.equal(status.status, 'prelaunch');
  assert.equal(status.running, false);
  // An allow-oob command over exec-oob (possible only because oob was negotiated).
  assert.deepEqual(await client.execute('query-yank', undefined, { oob: true }), [{ type: 'chardev', id: 'mon0' }]);
});

test('stop/cont produce RESUME then STOP, seen by a subscription made beforehand', async (t) => {
  const { client } = await qemuWithClient(t);
  const sub = client.events(['STOP', 'RESUME']);
  await client.execute('cont');
  assert.equal((await client.execute('query-status')).status, 'running');
  await client.execute('stop');
  const first = await sub.next({ timeoutMs: 30_000 });
  const second = await sub.next({ timeoutMs: 30_000 });
  assert.deepEqual([first.event, second.event], ['RESUME', 'STOP']);
  const micros = (e: typeof first) => e.timestamp.seconds * 1e6 + e.timestamp.microseconds;
  assert.ok(micros(second) >= micros(first));
  assert.equal((await client.execute('query-status')).status, 'paused');
});

test("QEMU's error class and desc are kept with the command name", async (t) => {
  const { client } = await qemuWithClient(t);
  await assert.rejects(client.execute('device_del', { id: 'nope' }), (e: QmpError) =>
    e.code === 'QMP_COMMAND_FAILED' && e.errorClass === 'DeviceNotFound' && e.command === 'device_del' && /nope/.test(e.desc ?? ''));
  await assert.rejects(client.executeUntyped('no-such-command'), (e: QmpError) => e.errorClass === 'CommandNotFound');
  assert.ok(client.isOpen, 'a failed command leaves the connection usable');
});

test('the 200 KiB schema reply passes the default bound and fails a 64 KiB one', async (t) => {
  const { qemu, client } = await qemuWithClient(t, { monitors: 2 });
  const schema = await client.execute('query-qmp-schema');
  assert.ok(schema.length > 1000);
  const small = await QmpClient.connect({ path: qemu.sockets[1]! }, { maxLineBytes: 64 * 1024 });
  await assert.rejects(small.execute('query-qmp-schema'), (e: QmpError) => e.code === 'QMP_PROTOCOL');
  assert.equal((await small.closed)?.code, 'QMP_PROTOCOL');
  assert.equal((await client.execute('query-status')).status, 'prelaunch', 'QEMU and the other monitor are unaffected');
});

test('add-fd passes a file at run time: blockdev-add on /dev/fdset, scsi-hd attached, then removed', async (t) => {
  // q35 + virtio-scsi: SCSI unplug completes without the guest (a paused -S guest never acks
  // a PCI/PCIe unplug, so virtio-blk-pci would wait for DEVICE_DELETED forever).
  const { qemu, client } = await qemuWithClient(t, { machine: 'q35', extraArgs: ['-device', 'virtio-scsi-pci,id=scsi0'] });
  const file = join(qemu.dir, 'disk.raw');
  writeFileSync(file, Buffer.alloc(1024 * 1024));
  const fd = openSync(file, 'r+');
  let added;
  try {
    added = await client.execute('add-fd', { opaque: 'warden-test-disk' }, { fds: [fd] });
  } finally {
    closeSync(fd);
  }
  const sets = await client.execute('query-fdsets');
  assert.deepEqual(sets.find((s) => s['fdset-id'] === added['fdset-id'])?.fds.map((f) => f.opaque), ['warden-test-disk']);
  await client.execute('blockdev-add', { driver: 'file', filename: `/dev/fdset/${added['fdset-id']}`, 'node-name': 'disk0' });
  await client.execute('device_add', { driver: 'scsi-hd', bus: 'scsi0.0', drive: 'disk0', id: 'd0' });
  const block = await client.execute('query-block');
  assert.equal(block.find((b) => b.qdev?.includes('d0'))?.inserted?.['node-name'], 'disk0');

  const deleted = client.events(['DEVICE_DELETED']);
  await client.execute('device_del', { id: 'd0' });
  const ev = await deleted.next({ timeoutMs: 30_000, match: (e) => e.data.device === 'd0' });
  assert.equal(ev.data.path, '/machine/peripheral/d0');
  await client.execute('blockdev-del', { 'node-name': 'disk0' });
  await client.execute('remove-fd', { 'fdset-id': added['fdset-id'] });
  assert.equal((await client.execute('query-block')).some((b) => b.qdev?.includes('d0')), false);
});

test('getfd stores a named fd (closefd consumes it); getfd without an fd is refused', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  const fd = openSync(qemu.dir, 'r');
  try {
    await client.execute('getfd', { fdname: 'warden-fd' }, { fds: [fd] });
  } finally {
    closeSync(fd);
  }
  await client.execute('closefd', { fdname: 'warden-fd' });
  await assert.rejects(client.execute('closefd', { fdname: 'warden-fd' }), (e: QmpError) => e.errorClass === 'GenericError');
  await assert.rejects(client.execute('getfd', { fdname: 'x' }), (e: QmpError) => /SCM_RIGHTS/.test(e.desc ?? ''));
});

test('fds interleaved with pipelined commands arrive with the right command', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  const fd = openSync(qemu.dir, 'r');
  try {
    const calls: Array<Promise<unknown>> = [];
    for (let i = 0; i < 5; i++) {
      for (let j = 0; j < 20; j++) calls.push(client.execute('query-status'));
      calls.push(client.execute('add-fd', { 'fdset-id': 10 + i, opaque: `n${i}` }, { fds: [fd] }));
    }
    await Promise.all(calls);
  } finally {
    closeSync(fd);
  }
  const sets = await client.execute('query-fdsets');
  assert.deepEqual(sets.map((s) => [s['fdset-id'], s.fds.length, s.fds[0]?.opaque]).sort(),
    [[10, 1, 'n0'], [11, 1, 'n1'], [12, 1, 'n2'], [13, 1, 'n3'], [14, 1, 'n4']]);
});

test('an fd sent while megabytes of earlier commands wait in Node\'s buffer goes out after them', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  const pad = 'x'.repeat(32 * 1024);
  const fd = openSync(qemu.dir, 'r');
  const calls: Array<Promise<unknown>> = [];
  try {
    // 512 KiB written in one tick: the kernel buffer fills and Node queues the rest, so the
    // add-fd's sendmsg must wait for Node's queue to drain or it would cut into a command.
    for (let i = 0; i < 16; i++) calls.push(client.executeUntyped('query-status', { pad }).catch((e: QmpError) => e.errorClass));
    calls.push(client.execute('add-fd', { 'fdset-id': 7, opaque: 'after-the-flood' }, { fds: [fd] }));
    for (let i = 0; i < 4; i++) calls.push(client.executeUntyped('query-status', { pad }).catch((e: QmpError) => e.errorClass));
    const results = await Promise.all(calls);
    assert.deepEqual(results.filter((r) => r !== 'GenericError'), [{ fd: (results[16] as { fd: number }).fd, 'fdset-id': 7 }]);
  } finally {
    closeSync(fd);
  }
  const sets = await client.execute('query-fdsets');
  assert.deepEqual(sets.map((s) => s.fds.map((f) => f.opaque)), [['after-the-flood']]);
});

test('connects over a socketpair fd too, and fd passing works there', async (t) => {
  const qemu = await startQemu({ socketpair: true });
  t.after(() => qemu.kill());
  const client = await QmpClient.connect({ fd: qemu.pairFd! });
  t.after(() => client.close());
  assert.equal((await client.execute('query-status')).status, 'prelaunch');
  const fd = openSync(qemu.dir, 'r');
  try {
    const added = await client.execute('add-fd', {}, { fds: [fd] });
    assert.ok(added.fd >= 0);
  } finally {
    closeSync(fd);
  }
});

test('a monitor accepts a new client after the first closes (manager restart)', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  await client.execute('cont');
  await client.close();
  const again = await QmpClient.connect({ path: qemu.sockets[0]! });
  t.after(() => again.close());
  assert.equal((await again.execute('query-status')).status, 'running');
});

test('quit with calls pending: every call settles, the rest fail QMP_DISCONNECTED, nothing unhandled', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  const sub = client.events('all');
  const quit = client.execute('quit');
  const after = Array.from({ length: 20 }, () => client.execute('query-status'));
  const results = await Promise.allSettled([quit, ...after]);
  for (const r of results) {
    if (r.status === 'rejected') assert.equal((r.reason as QmpError).code, 'QMP_DISCONNECTED');
  }
  assert.ok(results.slice(1).some((r) => r.status === 'rejected'), 'commands queued behind quit never ran');
  assert.equal((await client.closed)?.code, 'QMP_DISCONNECTED');
  const events: string[] = [];
  for await (const e of sub) events.push(e.event);
  // QEMU may exit before its monitor thread flushes SHUTDOWN (seen here about 1 run in 6):
  // the exit status, not the event, is the reliable signal that quit worked.
  assert.ok(events.length === 0 || (events.length === 1 && events[0] === 'SHUTDOWN'), `events: ${events.join(',')}`);
  assert.equal(await qemu.exited, 0);
  assert.equal(client.pendingCount, 0);
});

test('QEMU killed with calls in flight: they all settle, none is left pending, nothing unhandled', async (t) => {
  const { qemu, client } = await qemuWithClient(t);
  const dir = qemu.dir;
  const fd = openSync(dir, 'r');
  t.after(async () => closeSync(fd));
  const calls = Array.from({ length: 50 }, (_, i) => (i % 10 === 9
    ? client.execute('add-fd', {}, { fds: [fd] })
    : client.execute('query-status')));
  qemu.child.kill('SIGKILL');
  const results = await Promise.allSettled(calls);
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as QmpError).code] : []));
  assert.ok(failures.length > 0, 'QEMU died before answering everything');
  assert.ok(failures.every((c) => c === 'QMP_DISCONNECTED'), `codes: ${[...new Set(failures)].join(',')}`);
  assert.equal((await client.closed)?.code, 'QMP_DISCONNECTED');
  assert.equal(client.pendingCount, 0);
  await assert.rejects(client.execute('query-status'), (e: QmpError) => e.code === 'QMP_DISCONNECTED');
});
