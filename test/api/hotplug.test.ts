/** Disk hot-plug through wardend: the CLI verbs route to the daemon (POST/DELETE /v1/vms/NAME/devices) and QEMU gets and drops the fds. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE } from '../../src/vm/guest.js';
import { leftovers, qemuFiles, waitForText } from '../../src/vm/testing.js';
import { daemonFixture, http } from './helpers.js';

test('warden disk attach/resize/detach through the daemon: 202/operations, PATCH size, fds in and out of QEMU, refusals as the same codes', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids and creates cgroups' : false, timeout: 180_000,
}, async (t) => {
  const { env, socket, name, cli } = await daemonFixture(t, 'warden-api-hotplug-', 'wda-hp');
  const file = env.specFile({ name });
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), machine: 'pc' }));
  assert.equal((await cli('create', file)).code, 0);
  assert.equal((await cli('start', name)).code, 0);
  await waitForText(join(env.stateRoot, 'vms', name, 'serial.log'), GUEST_READY_LINE, 90_000);
  const pid = (await http(socket, 'GET', `/v1/vms/${name}`)).json.run.qemu.pid as number;
  const img = join(env.dir, 'extra.raw');
  writeFileSync(img, Buffer.alloc(1 << 20));

  const a = await cli('disk', 'attach', name, '--image', img, '--format', 'raw', '--name', 'extra', '--iops', '200', '--json');
  assert.equal(a.code, 0, a.io.stderr);
  assert.equal(JSON.parse(a.io.stdout).state, 'attached');
  assert.ok(qemuFiles(pid).includes(img), 'QEMU holds the image after attach through the daemon');
  // Resize (PATCH through the daemon): grows the top layer, refuses to shrink; boot-time disks too.
  const grown = await cli('disk', 'resize', name, 'extra', '2Mi', '--json');
  assert.equal(grown.code, 0, grown.io.stderr);
  assert.deepEqual([JSON.parse(grown.io.stdout).fromBytes, JSON.parse(grown.io.stdout).toBytes], [1 << 20, 2 << 20]);
  assert.equal(statSync(img).size, 2 << 20, 'the image file grew');
  const shrink = await cli('disk', 'resize', name, 'extra', '1Mi');
  assert.equal(shrink.code, 2, shrink.io.stderr);
  assert.match(shrink.io.stderr, /VM_DISK_SHRINK|shrinking/);
  assert.equal(statSync(img).size, 2 << 20, 'a refused shrink changes nothing');
  assert.equal((await cli('disk', 'resize', name, 'root', '96Mi')).code, 0, 'a boot-time disk grows too');
  // I/O limits (PATCH {limits} through the daemon): the hot-plugged disk's own throttle group, merged.
  const lim = await cli('disk', 'limits', name, 'extra', '--bps-write', '4Mi', '--json');
  assert.equal(lim.code, 0, lim.io.stdout);
  assert.deepEqual(JSON.parse(lim.io.stdout), { vm: name, disk: 'extra', limits: { iops: 200, bpsWrite: 4 << 20 }, via: 'throttle-group', liveOnly: false });
  const empty = await http(socket, 'PATCH', `/v1/vms/${name}/devices/extra`, '{}', { 'content-type': 'application/json' });
  assert.equal(empty.status, 400, empty.text);
  const again = await cli('disk', 'attach', name, '--image', img, '--format', 'raw', '--name', 'extra');
  assert.equal(again.code, 4, again.io.stderr);
  assert.match(again.io.stderr, /VM_(DISK_IN_USE|HOTPLUG_FAILED)/);
  const missing = await http(socket, 'DELETE', `/v1/vms/${name}/devices/nothing?wait=30`);
  assert.equal(missing.status, 404, missing.text);
  const accepted = await http(socket, 'DELETE', `/v1/vms/${name}/devices/extra`);
  assert.equal(accepted.status, 202, accepted.text);
  const done = await http(socket, 'GET', `/v1/operations/${accepted.json.operation.id as string}/wait?wait=60`);
  assert.deepEqual([done.json.operation.status, done.json.operation.result?.state], ['succeeded', 'detached'], done.text);
  assert.ok(!qemuFiles(pid).includes(img), 'QEMU holds no fd of it after detach');

  // A guest that cannot answer (paused): detach ends `removing` (exit 8); once it runs again, the
  // daemon's supervisor sees DEVICE_DELETED and finishes the removal with no further command.
  const held = join(env.dir, 'held.raw');
  writeFileSync(held, Buffer.alloc(1 << 20));
  assert.equal((await cli('disk', 'attach', name, '--image', held, '--format', 'raw', '--name', 'held', '--live-only')).code, 0);
  assert.equal((await cli('pause', name)).code, 0);
  const slow = await cli('disk', 'detach', name, 'held', '--timeout', '1');
  assert.equal(slow.code, 8, slow.io.stderr);
  assert.match(slow.io.stderr, /VM_DEVICE_REMOVING/);
  assert.equal((await cli('resume', name)).code, 0);
  const hotplugged = async (): Promise<Array<{ name: string; state: string }>> => JSON.parse((await cli('inspect', name, '--json')).io.stdout).hotplugged;
  let left = await hotplugged();
  for (let i = 0; i < 120 && left.length > 0; i++) { await new Promise((r) => setTimeout(r, 500)); left = await hotplugged(); }
  assert.deepEqual(left, [], 'the event finished it');
  assert.ok(!qemuFiles(pid).includes(held), 'and QEMU holds no fd of it');
  assert.equal((await cli('kill', name)).code, 0);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
