import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walkChain } from '../image/index.js';
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
