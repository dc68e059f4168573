import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../sys/index.js';
import { StateStore, defaultStateRoot } from './store.js';
import { isVmError } from './errors.js';
import { procId } from './proc.js';
import type { VmRecord } from './record.js';

const fs = new NodeFs();
function tempStore(t: { after(fn: () => void): void }): StateStore {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return new StateStore(dir, fs);
}
const rec = (name: string): VmRecord => ({ version: 1, name, phase: 'created', spec: { name }, createdAt: 't', updatedAt: 't' });

test('create, read, write and list VMs; a second create of the same name is VM_EXISTS', async (t) => {
  const store = tempStore(t);
  await store.create(rec('wdv-b'));
  await store.create(rec('wdv-a'));
  assert.deepEqual(await store.list(), ['wdv-a', 'wdv-b']);
  await store.write({ ...rec('wdv-a'), phase: 'stopped' });
  assert.equal((await store.read('wdv-a')).phase, 'stopped');
  await assert.rejects(store.create(rec('wdv-a')), (e) => isVmError(e, 'VM_EXISTS'));
  // Atomic writes leave no temp files behind.
  assert.deepEqual(readdirSync(store.paths('wdv-a').dir).sort(), ['vm.durable.json', 'vm.json']);
  await store.remove('wdv-a');
  await assert.rejects(store.read('wdv-a'), (e) => isVmError(e, 'VM_NOT_FOUND') && /warden list/.test(e.suggestions.join()));
  // A verb that read the record just before a concurrent delete gets the typed error, not a raw ENOENT.
  await assert.rejects(store.lock('wdv-a', 'start'), (e) => isVmError(e, 'VM_NOT_FOUND'));
});

test('bad names and corrupt records are refused with their own codes', async (t) => {
  const store = tempStore(t);
  await assert.rejects(store.read('../etc'), (e) => isVmError(e, 'VM_BAD_NAME'));
  await store.create(rec('wdv-c'));
  writeFileSync(store.paths('wdv-c').record, '{"version":1,');
  writeFileSync(store.paths('wdv-c').durable, '');
  await assert.rejects(store.read('wdv-c'), (e) => isVmError(e, 'VM_STATE_CORRUPT') && e.context['path'] === store.paths('wdv-c').record);
});

test('run state is written without touching the durable copy; a torn vm.json reads as the last durable record', async (t) => {
  const store = tempStore(t);
  const p = store.paths('wdv-e');
  const created = { ...rec('wdv-e'), spec: { name: 'wdv-e', memory: '1Gi' } };
  await store.create(created);
  const durableIno = statSync(p.durable).ino;
  assert.equal(statSync(p.record).ino, durableIno, 'a durable write: vm.json and vm.durable.json are one fsync\'d file');
  // A start's writes: phase, claims, run, volatile undo entries. vm.durable.json stays the created record.
  const running: VmRecord = { ...created, phase: 'running', updatedAt: 'u', disks: [{ path: '/d', dev: 1, ino: 2, writable: true }],
    undo: [{ kind: 'sockets', paths: ['/s'] }, { kind: 'jail', jailName: 'j', owner: '/o' }], run: { qemu: { pid: 1, startTime: 2 }, uid: 1, gid: 1, accel: 'tcg', startedAt: 'u', jailName: 'j', cgroups: [], protectionsOff: [] } };
  await store.write(running);
  assert.equal(statSync(p.durable).ino, durableIno, 'run state only: no new durable copy');
  assert.notEqual(statSync(p.record).ino, durableIno);
  assert.deepEqual(await store.read('wdv-e'), running);
  // The hot-plug journal names what lives in the running QEMU: run state too.
  const plugging: VmRecord = { ...running, hotplug: [{ name: 'd', run: 'u', deviceId: 'disk-d', state: 'attaching', steps: [], begun: 0, claims: [], disk: { name: 'd' }, liveOnly: false }] };
  await store.write(plugging);
  assert.equal(statSync(p.durable).ino, durableIno, 'a hot-plug journal entry: no new durable copy');
  assert.deepEqual(await store.read('wdv-e'), plugging);
  await store.write(running);
  // A TAP on a Linux bridge dies with the host: its net undo log is run state.
  const withTap: VmRecord = { ...running, undo: [...running.undo!, { kind: 'net', log: { version: 1, entries: [{ kind: 'delete-link', nic: 'n', ifname: 't', device: 'tap' }, { kind: 'bridge-detach', nic: 'n', ifname: 't', bridge: 'br0' }] } }] };
  await store.write(withTap);
  assert.equal(statSync(p.durable).ino, durableIno, 'a TAP and its bridge port: no new durable copy');
  await store.write({ ...withTap, undo: [...running.undo!, { kind: 'net', log: { version: 1, entries: [{ kind: 'ovs-del-port', nic: 'n', ifname: 't', bridge: 'ovsbr' }] } }] });
  assert.notEqual(statSync(p.durable).ino, durableIno, 'an OVS port outlives a reboot: durable');
  await store.write(running);
  // An undo entry naming what outlives a reboot (host networking: an OVS port) is durable.
  const withNet: VmRecord = { ...running, undo: [...running.undo!, { kind: 'net', log: { steps: ['ovs'] } }] };
  const beforeNet = statSync(p.durable).ino;
  await store.write(withNet);
  assert.notEqual(statSync(p.durable).ino, beforeNet, 'a net undo entry is written durably');
  assert.deepEqual(JSON.parse(readFileSync(p.durable, 'utf8')), withNet);
  // A power loss after a rename reached the disk before its data: vm.json empty or torn.
  const { run: _run, ...stopped } = withNet;
  await store.write({ ...stopped, phase: 'stopped' });
  for (const torn of ['', '{"version":1,"na']) {
    writeFileSync(p.record, torn);
    assert.deepEqual(await store.read('wdv-e'), withNet, 'the last durable record: the spec and the net undo entry survive');
  }
  rmSync(p.record);
  assert.deepEqual(await store.read('wdv-e'), withNet);
  // The next write repairs vm.json; a spec change is durable again.
  const edited = { ...withNet, spec: { name: 'wdv-e', memory: '2Gi' } };
  await store.write(edited);
  assert.deepEqual(JSON.parse(readFileSync(p.durable, 'utf8')), edited);
  assert.deepEqual(readdirSync(p.dir).sort(), ['vm.durable.json', 'vm.json']);
});

test('the operation lock excludes a second holder and is taken over from a dead one', async (t) => {
  const store = tempStore(t);
  await store.create(rec('wdv-d'));
  const lock = await store.lock('wdv-d', 'start');
  await assert.rejects(store.lock('wdv-d', 'stop'), (e) => isVmError(e, 'VM_BUSY') && /running "start"/.test(e.message));
  await lock.release();
  // A lock left by a process that has exited is stale.
  const child = spawn('sleep', ['10']);
  const id = await procId(fs, child.pid!);
  child.kill('SIGKILL');
  await new Promise((r) => child.on('exit', r));
  writeFileSync(store.paths('wdv-d').lock, JSON.stringify({ ...id, op: 'start' }));
  const again = await store.lock('wdv-d', 'stop');
  await again.release();
});

test('the default state root follows WARDEN_STATE_DIR, root, then XDG', () => {
  assert.equal(defaultStateRoot({ WARDEN_STATE_DIR: '/x' }, 0), '/x');
  assert.equal(defaultStateRoot({}, 0), '/var/lib/warden');
  assert.equal(defaultStateRoot({ XDG_STATE_HOME: '/home/u/.st' }, 1000), '/home/u/.st/warden');
});

test('a state root that cannot be created is VM_IO naming the VM directory, with the way out', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-vm-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), '');
  const store = new StateStore(join(dir, 'file', 'state'), fs); // ENOTDIR, even for root
  await assert.rejects(store.create(rec('wqa-x')), (e) => isVmError(e, 'VM_IO')
    && e.message === `creating the state directory ${join(dir, 'file', 'state', 'vms', 'wqa-x')} of VM wqa-x failed`
    && e.suggestions.some((s) => s.includes('--state-dir')));
});
