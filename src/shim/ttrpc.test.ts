import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ShimError } from './errors.js';
import { FrameReader, encodeFrame, MSG_REQUEST, MSG_RESPONSE } from './framing.js';
import { DEFAULT_GOCODE, loadProtos, packAny, type Protos } from './protos.js';
import { ttrpcServer } from './ttrpc.js';

const skip = existsSync(`${DEFAULT_GOCODE}/github.com/containerd/containerd/runtime/v2/task/shim.proto`) ? undefined : 'golang-github-containerd-containerd-dev is not installed';

/** A minimal ttrpc client: one request, its response (decoded with the method's own types). */
async function call(p: Protos, path: string, method: string, req: Record<string, unknown>, metadata: Array<{ key: string; value: string }> = []) {
  const m = p.task.methods[method]!;
  const reqType = m.resolvedRequestType!;
  const payload = reqType.encode(reqType.fromObject(req)).finish();
  const body = p.request.encode(p.request.fromObject({ service: 'containerd.task.v2.Task', method, payload, metadata })).finish();
  const sock = createConnection({ path });
  const reader = new FrameReader();
  const frame = await new Promise<{ streamId: number; type: number; payload: Buffer }>((resolve, reject) => {
    sock.on('data', (b: Buffer) => { const f = reader.push(b)[0]; if (f) resolve(f); });
    sock.on('error', reject);
    sock.write(encodeFrame({ streamId: 3, type: MSG_REQUEST, payload: Buffer.from(body) }));
  });
  sock.destroy();
  assert.equal(frame.streamId, 3, 'the response comes on the request\'s stream');
  assert.equal(frame.type, MSG_RESPONSE);
  const res = p.response.toObject(p.response.decode(frame.payload), { defaults: true }) as { status?: { code: number; message: string }; payload: Uint8Array };
  const out = m.resolvedResponseType!;
  return { status: res.status, body: out.toObject(out.decode(res.payload), { defaults: true, longs: Number, enums: String }) };
}

test('the Task service from containerd\'s own protos over ttrpc: requests decoded, replies and errors as google.rpc.Status', { skip }, async (t) => {
  const p = loadProtos();
  const dir = mkdtempSync(join(tmpdir(), 'wsh-ttrpc-'));
  const server = ttrpcServer({
    protos: p, service: p.task, handlers: {
      State: async (req, md) => ({ id: req['id'], pid: 42, status: 'RUNNING', bundle: md['containerd-namespace-ttrpc'] ?? '' }),
      Kill: async () => { throw new ShimError('SHIM_NOT_FOUND', 'task x: process already finished'); },
      Stats: async () => ({ stats: packAny(p, 'io.containerd.cgroups.v1.Metrics', { pids: { current: 3 } }) }),
    },
  });
  t.after(() => { server.close(); rmSync(dir, { recursive: true, force: true }); });
  const path = join(dir, 's.sock');
  await new Promise<void>((r) => server.listen(path, r));

  const st = await call(p, path, 'State', { id: 'vm1' }, [{ key: 'containerd-namespace-ttrpc', value: 'k8s.io' }]);
  assert.equal(st.status, null);
  assert.deepEqual([st.body['id'], st.body['pid'], st.body['status'], st.body['bundle']], ['vm1', 42, 'RUNNING', 'k8s.io']);

  const kill = await call(p, path, 'Kill', { id: 'vm1', signal: 9 });
  assert.deepEqual(kill.status, { code: 5, message: 'task x: process already finished', details: [] }, 'NotFound, as containerd\'s errdefs expect');

  const none = await call(p, path, 'Exec', { id: 'vm1' });
  assert.equal(none.status?.code, 12, 'Unimplemented for a method without a handler');

  const stats = await call(p, path, 'Stats', { id: 'vm1' });
  const any = stats.body['stats'] as { type_url: string; value: Uint8Array };
  assert.equal(any.type_url, 'io.containerd.cgroups.v1.Metrics', 'typeurl is the bare full name, as containerd registers it');
  const metrics = p.type('io.containerd.cgroups.v1.Metrics');
  assert.equal((metrics.toObject(metrics.decode(any.value), { longs: Number }) as { pids: { current: number } }).pids.current, 3);
});
