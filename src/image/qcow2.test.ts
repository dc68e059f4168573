/** @module image/qcow2.test: raw and qcow2 images made by the real qemu-img, probed and walked, compared with qemu-img info. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { probeImage, walkChain, ImageError, MAX_HEADER_BYTES } from './index.js';
import { assertMatchesQemu, qemuChain, qemuImg, qemuInfo, tempDir } from './testing.js';

test('raw and qcow2 (v2, v3) agree with qemu-img info', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const base = join(tmp.dir, 'base.raw');
  qemuImg(['create', '-q', '-f', 'raw', base, '3M']);
  const cases: Array<[string, string[]]> = [
    ['v3.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'compat=1.1', 'X', '5M']],
    ['v2.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', 'X', '7M']],
    ['l2.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'extended_l2=on,cluster_size=128k', 'X', '1G']],
    ['lazy.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', 'X', '1M']],
    ['over.qcow2', ['create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', 'X']],
    ['over-v2.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'compat=0.10', '-b', 'base.raw', '-F', 'raw', 'X']],
    ['data.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'data_file=data.bin', 'X', '2M']],
    ['rawdata.qcow2', ['create', '-q', '-f', 'qcow2', '-o', 'data_file=rawdata.bin,data_file_raw=on', 'X', '2M']],
  ];
  for (const [name, args] of cases) {
    const path = join(tmp.dir, name);
    qemuImg(args.map((a) => (a === 'X' ? path : a)), tmp.dir);
    const info = await probeImage(path);
    assertMatchesQemu(info, qemuInfo(path), name);
    assert.ok(info.bytesRead > 0 && info.bytesRead <= MAX_HEADER_BYTES, `${name}: bytesRead ${info.bytesRead}`);
  }
  assertMatchesQemu(await probeImage(base), qemuInfo(base), 'base.raw');
});

test('--format raw on qcow2 bytes reports raw and reads nothing', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'looks-like.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', path, '10M']);
  const info = await probeImage(path, { format: 'raw' });
  assertMatchesQemu(info, qemuInfo(path, 'raw'), 'forced raw');
  assert.equal(info.format, 'raw');
  assert.equal(info.bytesRead, 0);
  await assert.rejects(probeImage(join(tmp.dir, 'nope')), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_NOT_FOUND');
});

test('a raw file read as qcow2 is refused with IMAGE_BAD_MAGIC naming the path', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'plain.raw');
  qemuImg(['create', '-q', '-f', 'raw', path, '1M']);
  await assert.rejects(probeImage(path, { format: 'qcow2' }), (e: unknown) => {
    assert.ok(e instanceof ImageError);
    assert.equal(e.code, 'IMAGE_BAD_MAGIC');
    assert.equal(e.layer, path);
    return true;
  });
});

test('walkChain on a qcow2 → qcow2 → raw chain with a data file matches qemu-img --backing-chain', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const c = (args: string[]) => qemuImg(args, tmp.dir);
  c(['create', '-q', '-f', 'raw', 'base image.raw', '4M']);
  c(['create', '-q', '-f', 'qcow2', '-o', 'data_file=mid data.bin', '-b', 'base image.raw', '-F', 'raw', 'mid.qcow2']);
  c(['create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', 'top.qcow2']);
  const top = join(tmp.dir, 'top.qcow2');
  const chain = await walkChain(top, { format: 'qcow2' });
  const oracle = qemuChain(top, 'qcow2');
  assert.equal(chain.layers.length, 3);
  assert.equal(chain.layers.length, oracle.length);
  chain.layers.forEach((layer, i) => assertMatchesQemu(layer, oracle[i]!, `layer ${i}`));
  assert.deepEqual(chain.layers.map((l) => l.path), [top, join(tmp.dir, 'mid.qcow2'), join(tmp.dir, 'base image.raw')]);
  assert.equal(chain.layers[1]!.dataFilePath, join(tmp.dir, 'mid data.bin'));
  assert.equal(chain.layers[0]!.dataFilePath, null);
  assert.equal(new Set(chain.layers.map((l) => `${l.dev}:${l.ino}`)).size, 3);
});
