import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chainFiles, ownerFromUid, walkChain, walkChainConfined, type ImageError } from '../image/index.js';
import { OpenFds } from './fds.js';
import type { VmError } from './errors.js';

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

test('an image layer replaced between probe and open is refused, and the fd opened for it is closed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-fds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.raw');
  writeFileSync(disk, Buffer.alloc(4096));
  const chain = await walkChain(disk, { format: 'raw' });
  const layer = chain.layers[0]!;
  assert.equal(layer.path, disk, 'layer paths are the paths the plan opens');
  const probed = new Map([[layer.path, { dev: layer.dev, ino: layer.ino }]]);
  const planned = [{ kind: 'file' as const, name: 'disk-0', target: 3, from: 'disks[0].image', path: disk, flags: ['O_RDONLY' as const] }];

  const same = new OpenFds();
  await same.openAll(planned, 'wdv-fds', probed);
  assert.equal(typeof same.byName.get('disk-0'), 'number');
  await same.close(false);

  // Another file renamed into place: same path, another inode.
  writeFileSync(join(dir, 'other.raw'), Buffer.alloc(4096));
  renameSync(join(dir, 'other.raw'), disk);
  assert.notEqual(statSync(disk).ino, layer.ino);
  const before = fdCount();
  const swapped = new OpenFds();
  await assert.rejects(swapped.openAll(planned, 'wdv-fds', probed),
    (e: VmError) => e.code === 'VM_START_FAILED' && /is not the file that was probed/.test(e.message));
  await swapped.close(false);
  assert.equal(fdCount(), before, 'no fd left open');
});

test('a socket path too long for bind(2) is refused by name before anything is bound (bind would cut it short elsewhere)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-vm-fds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const deep = join(dir, 'x'.repeat(100 - dir.length));
  mkdirSync(deep);
  const path = join(deep, 'qmp.sock');
  const fds = new OpenFds();
  await assert.rejects(fds.openAll([{ kind: 'unix-listen' as const, name: 'qmp', target: 3, from: '(base)', path }], 'wqa-fds'),
    (e: VmError) => e.code === 'VM_START_FAILED' && e.message.includes(`the socket path ${path} of VM wqa-fds is too long for a unix socket`));
  await fds.close(true);
  assert.deepEqual(readdirSync(dir), ['x'.repeat(100 - dir.length)], 'no socket cut short next to it');
  assert.deepEqual(readdirSync(deep), []);
});

test('a layer swapped for a FIFO or a device between probe and open is refused at once, never opened; a swapped data file is refused too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-fds-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.qcow2');
  const data = join(dir, 'data.raw');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', `data_file=${data},data_file_raw=on`, disk, '1M']);
  const chain = await walkChainConfined({ image: disk, format: 'qcow2' }, { file: null, imageDirs: [] });
  const probed = chainFiles([chain]);
  assert.equal(probed.size, 2, 'the layer and its data file');
  const plannedDisk = { kind: 'file' as const, name: 'disk-0', target: 3, from: 'disks[0].image', path: disk, flags: ['O_RDWR' as const] };
  const plannedData = { kind: 'file' as const, name: 'disk-0-data', target: 4, from: 'disks[0].image', path: data, flags: ['O_RDWR' as const] };

  const ok = new OpenFds();
  await ok.openAll([plannedDisk, plannedData], 'wdv-fds', probed);
  const fd = ok.byName.get('disk-0')!;
  assert.equal(readlinkSync(`/proc/self/fd/${fd}`), disk);
  const flags = Number.parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]!, 8);
  assert.equal(flags & 3, 2, 'O_RDWR as planned');
  await ok.close(false);

  // The data file replaced by another file: before, data files were reopened by path unchecked.
  renameSync(data, join(dir, 'data.old'));
  writeFileSync(data, Buffer.alloc(1 << 20));
  const before = fdCount();
  const swappedData = new OpenFds();
  await assert.rejects(swappedData.openAll([plannedDisk, plannedData], 'wdv-fds', probed),
    (e: VmError) => e.code === 'VM_START_FAILED' && e.message.includes(`${data} is not the file that was probed`));
  await swappedData.close(false);
  assert.equal(fdCount(), before, 'no fd left open');

  // The layer replaced by a FIFO with no writer: an open by path would block the event loop forever.
  renameSync(disk, join(dir, 'disk.old'));
  execFileSync('mkfifo', [disk]);
  const fifo = new OpenFds();
  await assert.rejects(fifo.openAll([plannedDisk], 'wdv-fds', probed), (e: VmError) => e.code === 'VM_START_FAILED' && e.message.includes(`${disk} is not the file that was probed`) && /a fifo, not/.test((e.cause as Error).message));
  await fifo.close(false);
  // ... and by a character device (opening one can have side effects): refused by type before any open.
  rmSync(disk);
  execFileSync('mknod', [disk, 'c', '1', '5']);
  const dev = new OpenFds();
  await assert.rejects(dev.openAll([plannedDisk], 'wdv-fds', probed), (e: VmError) => e.code === 'VM_START_FAILED' && e.message.includes('it was not opened') && /a char, not/.test((e.cause as Error).message));
  await dev.close(false);
  assert.equal(fdCount(), before, 'no fd left open');
});

test('the owner check: a VM owner who could not write the top layer is refused, nor read a read-only one; root is not checked', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-vm-fds-')); // 0700 root: uid 65534 cannot reach it
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const disk = join(dir, 'disk.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', disk, '1M']);
  const d = { name: 'root', image: disk, format: 'qcow2', readOnly: false, media: 'disk', from: 'disks[0]' };
  const host = { file: null, imageDirs: [] };
  assert.equal((await walkChainConfined(d, host, { owner: ownerFromUid(0) })).layers.length, 1);
  if (process.getuid?.() === 0) await assert.rejects(walkChainConfined(d, host, { owner: ownerFromUid(65534) }), (e: ImageError) => e.code === 'IMAGE_OWNER_DENIED');
  await assert.rejects(walkChainConfined({ ...d, readOnly: true }, host, { owner: ownerFromUid(65534) }), (e: ImageError) => e.code === 'IMAGE_OWNER_DENIED' && /read-only for a VM of uid 65534/.test(e.message), 'read-only: read access is checked');
});
