/** @module image/blockdev.test: images on block devices (a loop device over a qemu-img image): size from sysfs, header read like a file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { probeImage } from './index.js';
import { assertMatchesQemu, qemuImg, qemuInfo, tempDir } from './testing.js';

test('a qcow2 image and a raw disk on a loop device agree with qemu-img info', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to attach a loop device');
  if (spawnSync('losetup', ['--version']).status !== 0) return t.skip('losetup not installed');
  const tmp = tempDir();
  t.after(tmp.remove);
  const file = join(tmp.dir, 'disk.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', file, '5M']);
  execFileSync('truncate', ['-s', '3M', file]);
  let dev: string;
  try {
    dev = execFileSync('losetup', ['-f', '--show', file], { encoding: 'utf8' }).trim();
  } catch (err) {
    return t.skip(`cannot attach a loop device here: ${String((err as Error).message).split('\n')[0]}`);
  }
  t.after(() => { execFileSync('losetup', ['-d', dev]); });
  assertMatchesQemu(await probeImage(dev), qemuInfo(dev), `${dev} (qcow2)`);
  const raw = await probeImage(dev, { format: 'raw' });
  assert.equal(raw.virtualSize, 3 * 1024 * 1024);
  assertMatchesQemu(raw, qemuInfo(dev, 'raw'), `${dev} as raw`);
});
