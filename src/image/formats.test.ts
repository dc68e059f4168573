/** @module image/formats.test: every format the prober reads, made by the real qemu-img (or built from the spec where it cannot), compared with qemu-img info field by field. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeImage, walkChain, ImageError, MAX_HEADER_BYTES, type ImageFormat } from './index.js';
import { bochsImage, cloopImage, dmgImage, isoImage } from './fixtures.js';
import { assertMatchesQemu, createRetrying, LUKS_SECRET, luksCreateOptions, qemuChain, qemuImg, qemuInfo, tempDir } from './testing.js';

const SECRET = LUKS_SECRET;

/** [file, qemu-img create arguments (X = the file)] for every format and variant qemu-img 7.2 creates. */
const CREATED: Array<[string, string[]]> = [
  ['q1.qcow', ['-f', 'qcow', 'X', '3M']],
  ['q1b.qcow', ['-f', 'qcow', '-b', 'base.raw', '-F', 'raw', 'X']],
  ['a.qed', ['-f', 'qed', 'X', '5M']],
  ['b.qed', ['-f', 'qed', '-b', 'base.raw', '-F', 'raw', 'X']],
  ['c.qed', ['-f', 'qed', '-b', 'q1.qcow', '-F', 'qcow', 'X']],
  ['v-sparse.vmdk', ['-f', 'vmdk', '-o', 'subformat=monolithicSparse', 'X', '7M']],
  ['v-flat.vmdk', ['-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'X', '7M']],
  ['v-2gsparse.vmdk', ['-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', 'X', '7M']],
  ['v-2gflat.vmdk', ['-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentFlat', 'X', '7M']],
  ['v-stream.vmdk', ['-f', 'vmdk', '-o', 'subformat=streamOptimized', 'X', '7M']],
  ['v-child.vmdk', ['-f', 'vmdk', '-b', 'v-sparse.vmdk', '-F', 'vmdk', 'X']],
  ['a.vdi', ['-f', 'vdi', 'X', '9M']],
  ['s.vdi', ['-f', 'vdi', '-o', 'static=on', 'X', '2M']],
  ['d.vpc', ['-f', 'vpc', 'X', '10M']],
  ['g.vpc', ['-f', 'vpc', '-o', 'force_size=on', 'X', '10M']],
  ['a.vhdx', ['-f', 'vhdx', 'X', '11M']],
  ['b.vhdx', ['-f', 'vhdx', '-o', 'block_size=8M,log_size=2M', 'X', '1G']],
  ['a.par', ['-f', 'parallels', 'X', '12M']],
  ['a.luks', [...SECRET, '-f', 'luks', '-o', luksCreateOptions(), 'X', '13M']],
  ['enc.qcow2', [...SECRET, '-f', 'qcow2', '-o', `encrypt.format=luks,${luksCreateOptions('encrypt.')}`, 'X', '4M']],
];

test('every format qemu-img creates: probe and forced format agree with qemu-img info', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  qemuImg(['create', '-q', '-f', 'raw', join(tmp.dir, 'base.raw'), '1M']);
  for (const [name, args] of CREATED) {
    const path = join(tmp.dir, name);
    createRetrying(['create', '-q', ...args.map((a) => (a === 'X' ? path : a))], tmp.dir);
    const probed = await probeImage(path);
    assertMatchesQemu(probed, qemuInfo(path), `${name} probed`);
    const forced = await probeImage(path, { format: probed.format });
    assertMatchesQemu(forced, qemuInfo(path, probed.format), `${name} as ${probed.format}`);
    assert.ok(probed.bytesRead <= MAX_HEADER_BYTES && forced.bytesRead <= MAX_HEADER_BYTES, name);
  }
});

test('fixed VHD: probed as raw (as QEMU does), read from its end-of-file footer with --format vpc', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'f.vpc');
  qemuImg(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', path, '10M']);
  assertMatchesQemu(await probeImage(path), qemuInfo(path), 'fixed vpc probed');
  const vpc = await probeImage(path, { format: 'vpc' });
  assertMatchesQemu(vpc, qemuInfo(path, 'vpc'), 'fixed vpc as vpc');
  assert.ok(vpc.bytesRead <= 1024, `footer read only: ${vpc.bytesRead}`);
});

test('bochs (v1, v2), cloop, dmg and ISO 9660 built from their specs agree with qemu-img info', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const built: Array<[string, Buffer, ImageFormat]> = [
    ['a.bochs', bochsImage(3 << 20), 'bochs'],
    ['b.bochs', bochsImage(5 << 20, { v1: true }), 'bochs'],
    ['a.cloop', cloopImage(5), 'cloop'],
    ['a.dmg', dmgImage(4096), 'dmg'],
    ['a.iso', isoImage(), 'raw'],
  ];
  for (const [name, bytes, format] of built) {
    const path = join(tmp.dir, name);
    writeFileSync(path, bytes);
    const info = await probeImage(path);
    assert.equal(info.format, format, name);
    assertMatchesQemu(info, qemuInfo(path), `${name} probed`);
    assertMatchesQemu(await probeImage(path, { format }), qemuInfo(path, format), `${name} as ${format}`);
  }
  assert.match((await probeImage(join(tmp.dir, 'a.iso'))).notes?.[0] ?? '', /ISO 9660/);
});

/** Rewrites one 64-bit big-endian field of a file in place. */
function patchU64BE(path: string, offset: number, value: bigint): void {
  const buf = readFileSync(path);
  buf.writeBigUInt64BE(value, offset);
  writeFileSync(path, buf);
}

test('qcow2 dirty and corrupt bits are reported as qemu-img does; unknown incompatible bits are refused by both', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const mk = (name: string) => { const p = join(tmp.dir, name); qemuImg(['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', p, '1M']); return p; };
  const dirty = mk('dirty.qcow2');
  patchU64BE(dirty, 72, 1n);
  const corrupt = mk('corrupt.qcow2');
  patchU64BE(corrupt, 72, 2n);
  for (const p of [dirty, corrupt]) assertMatchesQemu(await probeImage(p), qemuInfo(p), p);
  assert.equal((await probeImage(dirty)).dirty, true);
  assert.equal((await probeImage(corrupt)).corrupt, true);
  const unknown = mk('unknown.qcow2');
  patchU64BE(unknown, 72, 1n << 40n);
  assert.throws(() => qemuInfo(unknown), /Unsupported qcow2 feature/);
  await assert.rejects(probeImage(unknown), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_UNSUPPORTED_FEATURE');
});

test('a VMDK sparse extent without its descriptor is refused, as qemu-img refuses it', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  qemuImg(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', 'v.vmdk', '1M'], tmp.dir);
  const extent = join(tmp.dir, 'v-s001.vmdk');
  assert.throws(() => qemuInfo(extent));
  await assert.rejects(probeImage(extent), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_BAD_FIELD');
});

test('chains across formats (qcow2 → qed → raw, vmdk → vmdk, descriptor extents) match qemu-img --backing-chain', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const c = (...args: string[]) => qemuImg(['create', '-q', ...args], tmp.dir);
  c('-f', 'raw', 'base.raw', '2M');
  c('-f', 'qed', '-b', 'base.raw', '-F', 'raw', 'mid.qed');
  c('-f', 'qcow2', '-b', 'mid.qed', '-F', 'qed', 'top.qcow2');
  c('-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'parent.vmdk', '3M');
  c('-f', 'vmdk', '-b', 'parent.vmdk', '-F', 'vmdk', 'child.vmdk');
  c('-f', 'qcow', '-b', 'base.raw', '-F', 'raw', 'v1.qcow'); // qcow v1 records no format: the leaf is probed
  c('-f', 'qcow2', '-b', 'child.vmdk', '-F', 'vmdk', 'on-vmdk.qcow2');
  for (const top of ['top.qcow2', 'child.vmdk', 'v1.qcow', 'on-vmdk.qcow2']) {
    const path = join(tmp.dir, top);
    const chain = await walkChain(path);
    const oracle = qemuChain(path);
    assert.equal(chain.layers.length, oracle.length, top);
    chain.layers.forEach((l, i) => assertMatchesQemu(l, oracle[i]!, `${top} layer ${i}`));
  }
  c('-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', 'split.vmdk', '2M');
  const split = await walkChain(join(tmp.dir, 'split.vmdk'));
  assertMatchesQemu(split.layers[0]!, qemuInfo(join(tmp.dir, 'split.vmdk')), 'split.vmdk');
  assert.deepEqual(split.layers[0]!.extentPaths, [join(tmp.dir, 'split-s001.vmdk')]);
  // a sparse extent whose header QEMU would refuse is refused here too, naming the extent
  const ext = readFileSync(join(tmp.dir, 'split-s001.vmdk'));
  ext.writeUInt32LE(4096, 44); // num_gtes_per_gt past QEMU's 512
  writeFileSync(join(tmp.dir, 'split-s001.vmdk'), ext);
  assert.throws(() => qemuInfo(join(tmp.dir, 'split.vmdk')), /L2 table size too big/);
  await assert.rejects(walkChain(join(tmp.dir, 'split.vmdk')), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_BAD_FIELD' && e.layer === join(tmp.dir, 'split-s001.vmdk'));
  const child = await walkChain(join(tmp.dir, 'child.vmdk'));
  assert.deepEqual(child.layers[1]!.extentPaths, [join(tmp.dir, 'parent-flat.vmdk')]);
  await assert.rejects(walkChain(join(tmp.dir, 'child.vmdk'), { allowDirs: ['/nonexistent'] }), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_OUTSIDE_ALLOWED_DIRS');
});

test('VMDK descriptor lines are read as QEMU reads them: ZERO skipped, a FLAT line without offset refused, long names cut at 511', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  writeFileSync(join(tmp.dir, 'x.raw'), Buffer.alloc(1 << 20));
  const head = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n';
  const write = (name: string, lines: string) => { const p = join(tmp.dir, name); writeFileSync(p, head + lines); return p; };
  const zero = write('zero.vmdk', 'RW 2048 FLAT "x.raw" 0\nRW 4096 ZERO\nRW 1024 ZERO "z"\n');
  assertMatchesQemu(await probeImage(zero), qemuInfo(zero), 'ZERO extents');
  const bad = write('bad.vmdk', 'RW 2048 FLAT "x.raw"\n');
  assert.throws(() => qemuInfo(bad), /Invalid extent line/);
  await assert.rejects(probeImage(bad), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_BAD_FIELD');
  const long = write('long.vmdk', `RW 2048 FLAT "x.raw" 0\nRW 2048 SPARSE "${'y'.repeat(600)}"\n`);
  const info = await probeImage(long);
  assert.equal(info.extents?.[1]?.file, 'y'.repeat(511));
  // QEMU tries to open the same 511-byte name (too long for the file system, hence its refusal)
  assert.throws(() => qemuInfo(long), (e: unknown) => /\/(y+)': File name too long/.exec(String((e as { stderr?: unknown }).stderr))?.[1]?.length === 511);
});

test('a parallels image marked in use is reported dirty with a note (qemu-img info has no field for it, but opens it read-only only)', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'p.par');
  qemuImg(['create', '-q', '-f', 'parallels', path, '1M']);
  const buf = readFileSync(path);
  buf.writeUInt32LE(0x746f6e59, 44);
  writeFileSync(path, buf);
  const info = await probeImage(path);
  assert.equal(info.dirty, true);
  assert.match(info.notes?.[0] ?? '', /not closed cleanly/);
  assert.equal(qemuInfo(path)['virtual-size'], info.virtualSize);
});

test('qcow2 with a persistent bitmap agrees with qemu-img info, and notes the bitmap directory QEMU reads', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'bm.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', path, '4M']);
  qemuImg(['bitmap', '--add', path, 'b0']);
  const info = await probeImage(path);
  assertMatchesQemu(info, qemuInfo(path), 'bitmap');
  assert.match(info.notes?.join(' ') ?? '', /1 persistent bitmap/);
  const buf = readFileSync(path);
  const ext = buf.subarray(0, 4096).indexOf(Buffer.from([0x23, 0x85, 0x28, 0x75]));
  buf.writeUInt32BE(0, ext + 8); // nb_bitmaps = 0
  writeFileSync(path, buf);
  assert.throws(() => qemuInfo(path), /zero bitmaps/);
  await assert.rejects(probeImage(path), (e: unknown) => e instanceof ImageError && e.code === 'IMAGE_BAD_FIELD');
});
