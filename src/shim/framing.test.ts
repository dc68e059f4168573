import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FrameReader, encodeFrame, HEADER_LENGTH, MAX_MESSAGE, MSG_REQUEST } from './framing.js';
import { parseShimArgs } from './args.js';
import { shimPaths, vmNameFor } from './names.js';

test('a frame is a 10-byte big-endian header (length, stream id, type, flags) and its payload', () => {
  const f = encodeFrame({ streamId: 7, type: MSG_REQUEST, payload: Buffer.from('abc') });
  assert.deepEqual([...f.subarray(0, HEADER_LENGTH)], [0, 0, 0, 3, 0, 0, 0, 7, 1, 0]);
  assert.equal(f.subarray(HEADER_LENGTH).toString(), 'abc');
});

test('the reader reassembles frames split anywhere and returns several from one chunk', () => {
  const wire = Buffer.concat([1, 3, 5].map((id) => encodeFrame({ streamId: id, type: MSG_REQUEST, payload: Buffer.alloc(id, id) })));
  for (let cut = 0; cut <= wire.length; cut++) {
    const r = new FrameReader();
    const got = [...r.push(wire.subarray(0, cut)), ...r.push(wire.subarray(cut))];
    assert.deepEqual(got.map((f) => [f.streamId, f.payload.length]), [[1, 1], [3, 3], [5, 5]], `cut at ${cut}`);
  }
});

test('a frame announcing more than 4 MiB is refused before it is buffered', () => {
  const h = Buffer.alloc(HEADER_LENGTH);
  h.writeUInt32BE(MAX_MESSAGE + 1, 0);
  assert.throws(() => new FrameReader().push(h), (e: { code?: string }) => e.code === 'SHIM_PROTOCOL');
  assert.throws(() => encodeFrame({ streamId: 1, type: 2, payload: Buffer.alloc(MAX_MESSAGE + 1) }), (e: { code?: string }) => e.code === 'SHIM_PROTOCOL');
});

test('the command line as containerd builds it, in Go flag syntax', () => {
  const a = parseShimArgs(['-namespace', 'k8s.io', '-address', '/run/containerd/containerd.sock', '-publish-binary', '/usr/bin/containerd', '-id', 'abc', '-debug', 'start'], '/b');
  assert.deepEqual(a, { action: 'start', namespace: 'k8s.io', address: '/run/containerd/containerd.sock', publishBinary: '/usr/bin/containerd', id: 'abc', bundle: '/b', debug: true });
  assert.equal(parseShimArgs(['--address=unix:///x/c.sock', '-bundle', '/bb', 'delete'], '/b').bundle, '/bb');
  assert.equal(parseShimArgs(['--address=unix:///x/c.sock', 'delete'], '/b').address, '/x/c.sock');
  assert.throws(() => parseShimArgs(['-address', '/x', 'exec'], '/b'), (e: { code?: string }) => e.code === 'SHIM_USAGE');
  assert.throws(() => parseShimArgs(['start'], '/b'), (e: { code?: string; message: string }) => e.code === 'SHIM_USAGE' && e.message.includes('-address'));
});

test('paths derive from containerd\'s socket alone; VM names are valid warden names, stable, and apart per namespace', () => {
  const p = shimPaths('/run/containerd/containerd.sock', undefined);
  assert.equal(p.socket, '/run/containerd/warden/shim.sock');
  assert.equal(p.stateRoot, '/run/containerd/warden');
  const a = vmNameFor('default', 'My_VM.1');
  assert.match(a, /^c-my-vm-1-[0-9a-f]{8}$/);
  assert.equal(vmNameFor('default', 'My_VM.1'), a);
  assert.notEqual(vmNameFor('k8s.io', 'My_VM.1'), a);
  const long = vmNameFor('k8s.io', 'f'.repeat(64));
  assert.match(long, /^[a-z0-9][a-z0-9-]{0,62}$/);
  assert.match(vmNameFor('x', '___'), /^c-[0-9a-f]{8}$/);
});
