/** wardend's snapshot routes, driven by the CLI (which sends every verb to the daemon that owns the state root) and by plain HTTP. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { run } from '../../src/cli/index.js';
import { GUEST_READY_LINE, waitForText } from '../../src/vm/index.js';
import { capture, daemonFixture, http } from './helpers.js';

test('warden snapshot create/list/revert/delete through wardend (/v1/vms/NAME/snapshots): operations, 404 and 409 as documented', { timeout: 240_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const { env, socket, name } = await daemonFixture(t, 'warden-api-snap-', 'wda-snap');
  const state = ['--state-dir', env.stateRoot];
  // The disk in a directory of its own, so it can be swapped for a symlink below.
  const img = (...args: string[]): void => { const r = spawnSync('qemu-img', args, { encoding: 'utf8' }); assert.equal(r.status, 0, r.stderr); };
  const D = join(env.dir, 'disks');
  mkdirSync(D);
  img('create', '-q', '-f', 'qcow2', join(D, 'base.qcow2'), '64M');
  img('create', '-q', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', join(D, 'disk.qcow2'));
  let io = capture();
  assert.equal(await run(['create', env.specFile({ name, disk: join(D, 'disk.qcow2') }), ...state], io), 0, io.stderr);
  assert.equal(await run(['start', name, ...state], io = capture()), 0, io.stderr);
  const log = join(env.stateRoot, 'vms', name, 'serial.log');
  await waitForText(log, GUEST_READY_LINE, 90_000);

  assert.equal(await run(['snapshot', 'create', name, 'a', '--json', ...state], io = capture()), 0, io.stderr + io.stdout);
  const a = JSON.parse(io.stdout) as { snapshot: { disks: Array<{ overlay: string }> }; steps: string[] };
  assert.deepEqual(a.steps, ['add-fd', 'blockdev-add', 'blockdev-add', 'transaction']);
  const op = await http(socket, 'POST', `/v1/vms/${name}/snapshots`, JSON.stringify({ name: 'b' }));
  assert.equal(op.status, 202, op.text);
  const done = await http(socket, 'GET', `/v1/operations/${op.json.operation.id}/wait?wait=60`);
  assert.equal(done.json.operation.status, 'succeeded', done.text);
  const dup = await http(socket, 'POST', `/v1/vms/${name}/snapshots?wait=60`, JSON.stringify({ name: 'b' }));
  assert.deepEqual([dup.status, dup.json.error.code], [409, 'VM_SNAPSHOT_EXISTS'], dup.text);
  const list = await http(socket, 'GET', `/v1/vms/${name}/snapshots`);
  assert.deepEqual(list.json.snapshots.map((s: { name: string }) => s.name), ['a', 'b']);
  assert.equal(await run(['snapshot', 'list', name, '--json', ...state], io = capture()), 0, io.stderr);
  assert.equal((JSON.parse(io.stdout) as unknown[]).length, 2);
  const missing = await http(socket, 'DELETE', `/v1/vms/${name}/snapshots/zz?wait=60`);
  assert.deepEqual([missing.status, missing.json.error.code], [404, 'VM_SNAPSHOT_NOT_FOUND'], missing.text);

  // The disk's directory swapped for a symlink to a root directory holding lures of the layers' names (b's base a 0600 image):
  // delete and revert are refused as policy refusals (422, exit 3), that directory is untouched, the VM runs on as recorded.
  const T = join(env.dir, 'other');
  mkdirSync(T, { mode: 0o700 });
  const bTop = `${name}-root.b.qcow2`;
  img('create', '-q', '-f', 'qcow2', join(T, `${name}-root.a.qcow2`), '64M');
  chmodSync(join(T, `${name}-root.a.qcow2`), 0o600);
  img('create', '-q', '-f', 'qcow2', '-b', `${name}-root.a.qcow2`, '-F', 'qcow2', join(T, bTop));
  img('create', '-q', '-f', 'qcow2', join(T, 'disk.qcow2'), '64M'); // a's base, so revert's walk through the swapped name passes too
  const look = (): unknown => [lstatSync(T).mtimeMs, ...readdirSync(T).sort().map((f) => { const st = lstatSync(join(T, f)); return [f, st.mtimeMs, st.ctimeMs, st.size, readFileSync(join(T, f)).toString('base64')]; })];
  const seen = look();
  const held = async (): Promise<unknown> => { const v = (await http(socket, 'GET', `/v1/vms/${name}`)).json; return [v.phase, v.spec, (await http(socket, 'GET', `/v1/vms/${name}/snapshots`)).json.snapshots]; };
  const was = await held();
  renameSync(D, `${D}.real`);
  symlinkSync(T, D);
  try {
    const del = await http(socket, 'DELETE', `/v1/vms/${name}/snapshots/b?wait=60`);
    assert.deepEqual([del.status, del.json.error?.code], [422, 'IMAGE_CHANGED'], del.text);
    assert.equal(await run(['snapshot', 'revert', name, 'a', ...state], io = capture()), 3, io.stderr);
    assert.match(io.stderr, /IMAGE_CHANGED/);
  } finally {
    unlinkSync(D);
    renameSync(`${D}.real`, D);
  }
  assert.deepEqual(look(), seen, 'the other directory: same files, bytes and times');
  assert.deepEqual(await held(), was, 'running, record as it was');

  // Merge b's layer while it runs, then revert to a (the daemon stops and starts it under its supervisor).
  assert.equal(await run(['snapshot', 'delete', name, 'b', ...state], io = capture()), 0, io.stderr);
  const boots = readFileSync(log, 'latin1').split(GUEST_READY_LINE).length;
  assert.equal(await run(['snapshot', 'revert', name, 'a', '--json', ...state], io = capture()), 0, io.stderr);
  assert.equal((JSON.parse(io.stdout) as { record: { phase: string } }).record.phase, 'running');
  for (let i = 0; i < 900 && readFileSync(log, 'latin1').split(GUEST_READY_LINE).length === boots; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(readFileSync(log, 'latin1').split(GUEST_READY_LINE).length, boots + 1, 'booted again from the snapshot');
  const vm = await http(socket, 'GET', `/v1/vms/${name}`);
  assert.equal(vm.json.phase, 'running', 'the supervisor keeps the reverted VM as running');
  assert.ok(!existsSync(a.snapshot.disks[0]!.overlay), 'the abandoned layer is gone');
  assert.equal(await run(['snapshot', 'delete', name, 'a', ...state], io = capture()), 0, io.stderr);
  assert.deepEqual((await http(socket, 'GET', `/v1/vms/${name}/snapshots`)).json.snapshots, []);
  assert.equal((await http(socket, 'GET', `/v1/vms/${name}`)).json.spec.disks[0].image, join(D, 'disk.qcow2'), 'back on the original disk');
});
