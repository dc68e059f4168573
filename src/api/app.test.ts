/** Route tests: the /v1 app over a fake VmService, with the caller injected (no socket, no root, no QEMU). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmError, VmEvents, type ListEntry, type VmRecord, type VmService } from '../vm/index.js';
import { buildApp } from './app.js';
import type { Caller } from './auth.js';

const T = '2026-01-01T00:00:00.000Z';
const rec = (name: string, owner: number, phase: VmRecord['phase'] = 'created'): VmRecord => ({ version: 1, name, phase, spec: {}, owner, createdAt: T, updatedAt: T });

/** A VmService that keeps records in a map and records the verbs it was asked for. */
function fakeService(vms: VmRecord[]): VmService & { calls: string[] } {
  const byName = new Map(vms.map((v) => [v.name, v]));
  const get = async (name: string): Promise<VmRecord> => {
    const v = byName.get(name);
    if (v === undefined) throw new VmError('VM_NOT_FOUND', `VM ${name} does not exist`);
    return v;
  };
  const calls: string[] = [];
  const svc: VmService & { calls: string[] } = {
    calls, stateRoot: '/fake', events: new VmEvents('e1'),
    as: () => svc,
    create: async () => { throw new Error('not in these tests'); },
    start: async (name) => { calls.push(`start ${name}`); const v = { ...(await get(name)), phase: 'running' as const }; byName.set(name, v); return { record: v, done: [], timings: {}, warnings: [] }; },
    stop: async (name) => { calls.push(`stop ${name}`); return get(name); },
    kill: async (name) => { calls.push(`kill ${name}`); return get(name); },
    pause: async (name) => get(name), resume: async (name) => get(name), restart: async (name) => get(name),
    delete: async (name) => { calls.push(`delete ${name}`); byName.delete(name); },
    get, list: async (): Promise<ListEntry[]> => [...byName.values()].map((record) => ({ name: record.name, record })),
    inspect: async () => { throw new Error('not in these tests'); },
    qmp: async (name, command) => { calls.push(`qmp ${name} ${command}`); return { status: 'running' }; },
    console: async () => { throw new Error('not in these tests'); },
    logs: async () => 0,
    close: async () => {},
  };
  return svc;
}

const caller = (uid: number, admin: boolean): Caller => ({ uid, gid: uid, pid: 1, admin, member: true, groups: [uid] });

test('routes: owners see and act on their own VMs only, admins on all; QMP is admin-only; the caller is who the socket says', async () => {
  const svc = fakeService([rec('mine', 1000), rec('theirs', 0)]);
  let who = caller(1000, false);
  const app = buildApp({ service: svc, version: 't', callerOf: () => who });
  const get = (url: string) => app.server.inject({ method: 'GET', url });
  assert.deepEqual((await get('/v1/vms')).json().vms.map((v: { name: string }) => v.name), ['mine']);
  assert.equal((await get('/v1/vms/theirs')).statusCode, 403);
  assert.equal((await get('/v1/vms/theirs')).json().error.code, 'AUTH_FORBIDDEN');
  assert.equal((await get('/v1/vms/mine')).statusCode, 200);
  const qmp = await app.server.inject({ method: 'POST', url: '/v1/vms/mine/qmp', headers: { 'content-type': 'application/json' }, payload: '{"execute":"query-status"}' });
  assert.equal(qmp.statusCode, 403);
  assert.equal((await app.server.inject({ method: 'DELETE', url: '/v1/vms/theirs' })).statusCode, 403);
  assert.deepEqual(svc.calls, [], 'nothing refused reached the service');
  who = caller(0, true);
  assert.equal((await get('/v1/vms')).json().vms.length, 2);
  assert.equal((await app.server.inject({ method: 'POST', url: '/v1/vms/mine/qmp', headers: { 'content-type': 'application/json' }, payload: '{"execute":"query-status"}' })).json().return.status, 'running');
  assert.equal((await get('/v1')).json().caller.admin, true);
});

test('routes: a state change is an operation (202, then wait); a refused one is 409 at once; operations are visible to their requestor only', async () => {
  const svc = fakeService([rec('a', 1000), rec('b', 1000, 'running')]);
  let who = caller(1000, false);
  const app = buildApp({ service: svc, version: 't', callerOf: () => who });
  const put = (url: string, body: unknown) => app.server.inject({ method: 'PUT', url, headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  const accepted = await put('/v1/vms/a/state', { action: 'start' });
  assert.equal(accepted.statusCode, 202);
  const id = accepted.json().operation.id as string;
  const done = await app.server.inject({ method: 'GET', url: `/v1/operations/${id}/wait?wait=5` });
  assert.equal(done.json().operation.status, 'succeeded');
  assert.equal(done.json().operation.result.record.phase, 'running');
  const ended = svc.events!.since('e1-0')!.find((e) => e.type === 'operation');
  assert.deepEqual([ended?.operation, ended?.data], [id, { action: 'start', status: 'succeeded' }], 'the end of an operation is an event');
  const refused = await put('/v1/vms/b/state?wait=5', { action: 'start' });
  assert.deepEqual([refused.statusCode, refused.json().error.code], [409, 'VM_INVALID_STATE']);
  assert.deepEqual(svc.calls, ['start a']);
  assert.equal((await put('/v1/vms/a/state', { action: 'stop', timeout: -1 })).statusCode, 400);
  who = caller(2000, false);
  assert.equal((await app.server.inject({ method: 'GET', url: `/v1/operations/${id}` })).statusCode, 404, 'another user does not see the operation');
});

test('group membership comes from /etc/group for the peer uid, not from a pid that may be another process by now', async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const { groupsOf } = await import('./auth.js');
  const etc = mkdtempSync(join(tmpdir(), 'warden-etc-'));
  try {
    writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\nann:x:1000:1000::/home/ann:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n');
    writeFileSync(join(etc, 'group'), 'warden:x:995:ann,bob\nwarden-admin:x:994:bob\nann:x:1000:\n');
    const num = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
    assert.deepEqual(num(groupsOf(1000, 1000, etc)), [995, 1000]);
    assert.deepEqual(num(groupsOf(1001, 1001, etc)), [994, 995, 1001]);
    assert.deepEqual(groupsOf(4242, 4242, etc), [4242], 'an unknown uid has its gid only');
  } finally {
    rmSync(etc, { recursive: true, force: true });
  }
});
