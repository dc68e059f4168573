/** The supervisor against a scripted QMP peer (fault injection) and a stand-in process: QMP events become typed events, the process's exit a stopped event. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeQmpPeer } from '../qmp/testing/index.js';
import { NodeFs, loadNative } from '../sys/index.js';
import { VmEvents, type VmEvent } from './events.js';
import { VmManager } from './manager.js';
import { procId } from './proc.js';
import { QmpSessions } from './session.js';
import { StateStore } from './store.js';
import { VmSupervisor } from './supervisor.js';
import type { Backends } from './ports.js';

test('supervisor: GUEST_PANICKED, BLOCK_IO_ERROR and DEVICE_DELETED on the held QMP session become typed events; the process exiting is a stopped event at once', { timeout: 30_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-sup-'));
  const peer = await FakeQmpPeer.start();
  const stand = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(async () => { stand.kill('SIGKILL'); await peer.close(); rmSync(dir, { recursive: true, force: true }); });
  peer.script = (cmd, conn) => { if (cmd.execute === 'query-status') conn.reply(cmd, { status: 'running', running: true, singlestep: false }); else conn.reply(cmd); };

  const fs = new NodeFs();
  const store = new StateStore(dir, fs);
  const sessions = new QmpSessions();
  const backends = {
    qmpConnect: (p: string, ms: number) => sessions.connect(p, ms),
    jail: { exitOf: async () => ({ code: null, signal: 'SIGKILL' }), teardown: async () => {} },
  } as unknown as Backends; // only what reconcile and teardown of this record touch
  const manager = new VmManager({ store, backends, fs });
  const now = new Date().toISOString();
  const qemu = (await procId(fs, stand.pid!))!;
  await store.create({ version: 1, name: 'wds', phase: 'running', spec: {}, owner: 0, createdAt: now, updatedAt: now,
    run: { qemu, uid: 0, gid: 0, accel: 'tcg', startedAt: now, jailName: 'wds', cgroups: [], protectionsOff: [] } });
  symlinkSync(peer.path, store.paths('wds').qmpSocket);

  const events = new VmEvents('t');
  const seen: VmEvent[] = [];
  events.subscribe((e) => seen.push(e));
  const sup = new VmSupervisor('wds', { manager, events, sessions, native: loadNative(), log: () => {} });
  t.after(() => sup.dispose());
  assert.equal((await sup.adopt()).phase, 'running');
  const until = async (pred: () => boolean): Promise<void> => { for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 25)); };
  await until(() => peer.connections.length > 0);

  const ts = { seconds: 1, microseconds: 0 };
  peer.connections[0]!.send({ event: 'GUEST_PANICKED', data: { action: 'pause' }, timestamp: ts });
  peer.connections[0]!.send({ event: 'BLOCK_IO_ERROR', data: { device: '', 'node-name': 'disk0', operation: 'write', action: 'report' }, timestamp: ts });
  peer.connections[0]!.send({ event: 'DEVICE_DELETED', data: { device: 'nic1', path: '/machine/peripheral/nic1' }, timestamp: ts });
  await until(() => seen.length >= 3);
  assert.deepEqual(seen.map((e) => [e.type, e.vm, e.owner]), [['guest-panicked', 'wds', 0], ['block-io-error', 'wds', 0], ['device-deleted', 'wds', 0]]);
  assert.equal(seen[1]!.data?.['node-name'], 'disk0');

  stand.kill('SIGKILL'); // the stand-in for QEMU dies; nobody runs a command
  await until(() => seen.some((e) => e.type === 'stopped'));
  const stopped = seen.find((e) => e.type === 'stopped')!;
  assert.deepEqual([stopped.reason, stopped.signal, stopped.phase], ['crashed', 'SIGKILL', 'crashed']);
  assert.equal((await store.read('wds')).phase, 'crashed');
});
