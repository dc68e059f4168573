import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../sys/index.js';
import { StateStore } from './store.js';
import { endRun, undoRecords, type TeardownDeps } from './teardown.js';
import type { Backends } from './ports.js';
import type { VmRecord } from './record.js';

/** Backends whose jail teardown fails (fault injection) and whose net undo is recorded. */
function faultyDeps(dir: string, calls: string[]): TeardownDeps {
  const backends = {
    jail: {
      teardown: async (name: string) => { calls.push(`jail ${name}`); throw new Error('cgroup busy'); },
      exitOf: async () => ({ code: null, signal: 'SIGSEGV' as NodeJS.Signals }),
    },
    net: { undo: async (log: unknown) => { calls.push(`net ${JSON.stringify(log)}`); } },
  } as unknown as Backends;
  return { fs: new NodeFs(), store: new StateStore(dir, new NodeFs()), backends, now: () => 'T' };
}

test('undo records run in reverse; a failing one is reported and the rest still run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-teardown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'qmp.sock');
  writeFileSync(sock, '');
  const calls: string[] = [];
  const { failures, remaining } = await undoRecords(faultyDeps(dir, calls), [
    { kind: 'net', log: { version: 1, entries: [] } },
    { kind: 'sockets', paths: [sock] },
    { kind: 'jail', jailName: 'wdv-t', owner: '' },
  ]);
  assert.deepEqual(calls, ['jail wdv-t', 'net {"version":1,"entries":[]}']);
  assert.equal(existsSync(sock), false, 'the socket file is removed');
  assert.deepEqual(failures, ['jail: cgroup busy']);
  assert.deepEqual(remaining, [{ kind: 'jail', jailName: 'wdv-t', owner: '' }], 'the failed undo is kept for a retry');
});

test('ending a run records the reason from the launcher, keeps undo failures as warnings, clears the run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-teardown-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const d = faultyDeps(dir, []);
  const rec: VmRecord = { version: 1, name: 'wdv-t', phase: 'running', spec: {}, createdAt: 'T', updatedAt: 'T',
    run: { qemu: { pid: 999999999, startTime: 1 }, uid: 1, gid: 1, accel: 'tcg', startedAt: 'T', jailName: 'wdv-t', cgroups: [], protectionsOff: [] },
    undo: [{ kind: 'jail', jailName: 'wdv-t', owner: '' }], disks: [{ path: '/x', dev: 1, ino: 2, writable: true }] };
  await d.store.create(rec);
  const out = await endRun(d, rec);
  assert.equal(out.phase, 'crashed');
  assert.deepEqual([out.lastExit?.reason, out.lastExit?.signal], ['crashed', 'SIGSEGV']);
  assert.deepEqual(out.warnings, ['teardown: jail: cgroup busy']);
  assert.deepEqual(out.undo, [{ kind: 'jail', jailName: 'wdv-t', owner: '' }], 'kept to retry');
  assert.equal(out.run, undefined);
  assert.equal(out.disks, undefined, 'the disk claims are released');
  assert.deepEqual(await d.store.read('wdv-t'), out);
});
