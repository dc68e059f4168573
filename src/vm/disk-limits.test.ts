/** Disk I/O limits: the schema's refusals, the hot-plug plan's throttle steps, and a real QEMU (TCG) whose guest's reads are bounded by them and changed live. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';
import { bootDiskSteps, planDiskAttach, planDiskDetach } from '../plan/index.js';
import { DiskSchema } from '../spec/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { leftovers, openConsole, testEnv, vmName, waitForText } from './testing.js';

test('disk limits: a total next to read/write of the same kind is refused, rates take sizes', () => {
  const bad = DiskSchema.safeParse({ name: 'd', image: '/x', format: 'raw', limits: { bps: 1, bpsRead: 2, iops: 3 } });
  assert.equal(bad.success, false);
  assert.match(JSON.stringify(bad.error?.issues), /bps \(a total\) cannot be combined with bpsRead\/bpsWrite/);
  assert.equal(DiskSchema.safeParse({ name: 'd', image: '/x', format: 'raw', limits: {} }).success, false, 'an empty limits object says nothing: refused');
  assert.deepEqual(DiskSchema.parse({ name: 'd', image: '/x', format: 'raw', limits: { bpsRead: '10Mi', iops: 5 } }).limits, { bpsRead: 10 * 1024 * 1024, iops: 5 });
});

test('planDiskAttach with limits: object-add of its throttle group, a throttle node above the chain, the device on it; detach undoes them in reverse', () => {
  const disk = DiskSchema.parse({ name: 'data', image: '/d/x.raw', format: 'raw', limits: { iops: 100 } });
  const chain = { layers: [{ path: '/d/x.raw', format: 'raw', backingFilename: null, backingFormat: null, encrypted: false, dataFilePath: null, dev: 1, ino: 2 }] } as never;
  const p = planDiskAttach(disk, chain, { machine: 'pc', fdsets: [], pciSlots: [0, 1, 2], freePorts: [], diskNames: [] });
  assert.deepEqual(p.issues, []);
  assert.deepEqual(p.steps.map((s) => `${s.command} ${String(s.args['node-name'] ?? s.args['id'] ?? s.args['fdset-id'])}`),
    ['add-fd 1', 'blockdev-add data-0-file', 'blockdev-add data-0-fmt', 'object-add tg-data', 'blockdev-add data-throttle', 'device_add disk-data']);
  assert.equal((p.steps[3]!.args['limits'] as Record<string, number>)['iops-total'], 100);
  assert.equal(p.steps.at(-1)!.args['drive'], 'data-throttle');
  assert.deepEqual(planDiskDetach(p.steps).map((u) => `${u.command} ${String(u.args['node-name'] ?? u.args['id'] ?? u.args['fdset-id'])}`),
    ['device_del disk-data', 'blockdev-del data-throttle', 'object-del tg-data', 'blockdev-del data-0-fmt', 'blockdev-del data-0-file', 'remove-fd 1']);
});

test('bootDiskSteps: a boot disk\'s fdsets, nodes, throttle group and device read back from the golden plan\'s argv, in the order made', () => {
  const argv = (JSON.parse(readFileSync(new URL('../../../test/golden/plan/disk-limits/plan.json', import.meta.url), 'utf8')) as { argv: string[] }).argv;
  const show = (name: string): string[] => bootDiskSteps(argv, name).map((s) => `${s.command} ${String(s.args['node-name'] ?? s.args['id'] ?? s.args['fdset-id'])}`);
  assert.deepEqual(show('root'), ['add-fd 2', 'blockdev-add root-0-file', 'blockdev-add root-0-fmt', 'object-add tg-root', 'blockdev-add root-throttle', 'device_add disk-root']);
  assert.deepEqual(planDiskDetach(bootDiskSteps(argv, 'plain')).map((u) => u.command), ['device_del', 'blockdev-del', 'blockdev-del', 'remove-fd']);
  assert.deepEqual(show('nothing'), [], 'no device: nothing to take over');
});

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

/** Guest seconds (from its /proc/uptime) a read of `mib` MiB at offset `skipMib` of `dev` takes, reported on the console. */
async function guestReadSeconds(sock: Socket, log: string, dev: string, skipMib: number, mib: number, tag: string): Promise<number> {
  sock.write(`a=$(cut -d' ' -f1 /proc/uptime); dd if=/dev/${dev} of=/dev/null bs=64k skip=${skipMib * 16} count=${mib * 16} 2>/dev/null; echo RD${tag}-$a-$(cut -d' ' -f1 /proc/uptime)-END\n`);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const m = new RegExp(`RD${tag}-([0-9.]+)-([0-9.]+)-END`).exec(readFileSync(log, 'latin1'));
    if (m !== null) return Number(m[2]) - Number(m[1]);
    if (Date.now() > deadline) throw new Error(`no read timing ${tag} on the console`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('limits at boot are a throttle group QEMU shows, bound the guest\'s reads, and change live (qom-set; block_set_io_throttle on a disk started without)', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-limits-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const data = join(env.dir, 'data.raw');
  writeFileSync(data, Buffer.alloc(16 << 20, 7));
  const name = vmName('wdv-lim');
  const file = env.specFile({ name });
  const spec = JSON.parse(readFileSync(file, 'utf8')) as { disks: unknown[] };
  writeFileSync(file, JSON.stringify({ ...spec, machine: 'pc', disks: [...spec.disks, { name: 'data', image: data, format: 'raw', readOnly: true, limits: { bps: '512Ki' } }] }));
  await m.create(file);
  await m.start(name);
  const log = m.store.paths(name).serialLog;
  await waitForText(log, GUEST_READY_LINE, 90_000);
  const sock = await openConsole(m.store.paths(name).serialSocket, t);

  // QEMU has the group with the spec's limit, and the device reads through the throttle node.
  const limits = (await m.qmp(name, 'qom-get', { path: '/objects/tg-data', property: 'limits' })) as Record<string, number>;
  assert.equal(limits['bps-total'], 512 << 10);
  const nodes = (await m.qmp(name, 'query-named-block-nodes', { flat: true })) as Array<{ 'node-name': string; drv: string }>;
  assert.ok(nodes.some((n) => n['node-name'] === 'data-throttle' && n.drv === 'throttle'), 'a throttle node above the chain');

  // 4 MiB at 512 KiB/s: the guest's own clock sees at least 4 s (generous: 8 s less the throttle's burst), which
  // also leaves the unthrottled read below room on a loaded host.
  const slow = await guestReadSeconds(sock, log, 'vdb', 0, 4, 'A');
  assert.ok(slow >= 4, `a 4 MiB read at bps 512Ki took ${slow} s of guest time`);

  // Live: lift bps, set iops; QEMU's group shows it, the stored spec follows, the next 4 MiB (not cached) is faster.
  const io = capture();
  assert.equal(await run(['disk', 'limits', name, 'data', '--bps', '0', '--iops', '100000', '--json', '--state-dir', env.stateRoot], io), 0, io.stderr);
  assert.deepEqual(JSON.parse(io.stdout), { vm: name, disk: 'data', limits: { iops: 100000 }, via: 'throttle-group', liveOnly: false });
  const after = (await m.qmp(name, 'qom-get', { path: '/objects/tg-data', property: 'limits' })) as Record<string, number>;
  assert.deepEqual([after['bps-total'], after['iops-total']], [0, 100000]);
  assert.deepEqual(((await m.store.read(name)).spec['disks'] as Array<{ name: string; limits?: unknown }>).find((d) => d.name === 'data')?.limits, { iops: 100000 });
  const fast = await guestReadSeconds(sock, log, 'vdb', 8, 4, 'B');
  t.diagnostic(`guest time for 4 MiB: ${slow} s at bps 512Ki, ${fast} s unthrottled`);
  assert.ok(fast < slow, `unthrottled read (${fast} s) faster than the throttled one (${slow} s)`);

  // A disk started without limits: its device's BlockBackend is throttled instead (query-block shows it); live-only keeps the spec.
  const io2 = capture();
  assert.equal(await run(['disk', 'limits', name, 'root', '--iops-read', '50', '--live-only', '--json', '--state-dir', env.stateRoot], io2), 0, io2.stdout);
  assert.equal((JSON.parse(io2.stdout) as { via: string }).via, 'block-backend');
  const blocks = (await m.qmp(name, 'query-block')) as Array<{ qdev?: string; inserted?: { iops_rd?: number } }>;
  assert.equal(blocks.find((b) => b.qdev?.includes('disk-root'))?.inserted?.iops_rd, 50);
  assert.equal(((await m.store.read(name)).spec['disks'] as Array<{ name: string; limits?: unknown }>).find((d) => d.name === 'root')?.limits, undefined, 'live only: the spec is unchanged');
  const io4 = capture();
  assert.equal(await run(['disk', 'limits', name, 'root', '--bps-read', '1Mi', '--iops', '5', '--state-dir', env.stateRoot], io4), 4, `total iops next to the live iops-read: ${io4.stderr}`);
  assert.match(io4.stderr, /cannot be combined/);

  sock.destroy();
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
