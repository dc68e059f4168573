/** @module image/hostile.test: crafted headers (huge tables and counts, bad offsets, truncation, empty and 1-byte files) are refused or reported at once, within the byte bound. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeImage, readImageInfo, ImageError, MAX_HEADER_BYTES, type ImageErrorCode, type ImageFormat, type ImageInfo } from './index.js';
import { MemorySource } from './memory.js';
import { qcow2WithSnapshots } from './fixtures.js';
import { qemuImg, tempDir } from './testing.js';

/** Probes bytes in memory; checks the bound from the outside, returns the info or the ImageError. */
async function probeBytes(bytes: Uint8Array, format: ImageFormat | null = null, size?: number): Promise<ImageInfo | ImageError> {
  const src = new MemorySource(bytes, size ?? bytes.length);
  try {
    return await readImageInfo(src, format);
  } catch (err) {
    assert.ok(err instanceof ImageError, `escaped: ${String(err)}`);
    return err;
  } finally {
    assert.ok(src.bytesServed <= MAX_HEADER_BYTES, `read ${src.bytesServed} bytes`);
  }
}

function expectCode(r: ImageInfo | ImageError, code: ImageErrorCode): void {
  assert.ok(r instanceof ImageError, `expected ${code}, got ${JSON.stringify(r)}`);
  assert.equal(r.code, code, r.message);
}

/** Real qemu-img images as seeds, read once per test run. */
function seeds(t: { after: (fn: () => void) => void }): Record<string, Buffer> {
  const tmp = tempDir();
  t.after(tmp.remove);
  const out: Record<string, Buffer> = {};
  for (const [name, fmt, opts] of [['q.qcow2', 'qcow2', 'lazy_refcounts=on'], ['v.vdi', 'vdi', ''], ['p.par', 'parallels', ''], ['d.vpc', 'vpc', ''], ['s.vmdk', 'vmdk', ''], ['x.vhdx', 'vhdx', ''], ['e.qed', 'qed', '']] as const) {
    const path = join(tmp.dir, name);
    qemuImg(['create', '-q', '-f', fmt, ...(opts === '' ? [] : ['-o', opts]), path, '4M']);
    out[name] = readFileSync(path);
  }
  return out;
}

test('empty and 1-byte files: raw when probed, refused as anything else, at once', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  for (const size of [0, 1]) {
    const path = join(tmp.dir, `f${size}`);
    writeFileSync(path, Buffer.alloc(size, 0x51));
    const info = await probeImage(path);
    assert.equal(info.format, 'raw');
    assert.equal(info.virtualSize, size === 0 ? 0 : 512);
    for (const format of ['qcow2', 'vmdk', 'vpc', 'vhdx', 'luks', 'dmg'] as const) {
      await assert.rejects(probeImage(path, { format }), (e: unknown) => e instanceof ImageError && e.layer === path, format);
    }
  }
});

test('qcow2: snapshot, L1 and refcount tables at QEMU\'s limits are never read; past them, and bad name offsets and sizes, are refused', async (t) => {
  const s = seeds(t)['q.qcow2']!;
  const huge = Buffer.from(s);
  huge.writeUInt32BE(65536, 60); // nb_snapshots: QEMU's maximum (its open reads all of them)
  huge.writeUInt32BE(4 * 1024 * 1024, 36); // l1_size: QEMU's maximum (32 MiB of L1 table)
  huge.writeUInt32BE(128, 56); // refcount_table_clusters: QEMU's maximum for 64 KiB clusters
  const info = await probeBytes(huge);
  assert.ok(!(info instanceof ImageError) && info.bytesRead <= 1024, JSON.stringify(info));
  assert.match(info.notes?.join(' ') ?? '', /65536 internal snapshots/);
  for (const [off, value] of [[60, 65537], [36, 4 * 1024 * 1024 + 1], [56, 129], [36, 0]] as const) {
    const b = Buffer.from(s);
    b.writeUInt32BE(value, off);
    expectCode(await probeBytes(b), 'IMAGE_BAD_FIELD');
  }
  const cases: Array<[number, number, 'u32' | 'u64', ImageErrorCode]> = [
    [16, 0xffffffff, 'u32', 'IMAGE_BAD_FIELD'], // backing name size without an offset: ignored, so set both below
    [20, 63, 'u32', 'IMAGE_BAD_FIELD'], // cluster_bits
    [100, 0xfffffff0, 'u32', 'IMAGE_BAD_FIELD'], // header_length
    [4, 4, 'u32', 'IMAGE_UNSUPPORTED_VERSION'],
    [32, 7, 'u32', 'IMAGE_BAD_FIELD'], // crypt_method
  ];
  for (const [off, value, width, code] of cases) {
    const b = Buffer.from(s);
    if (off === 16) b.writeBigUInt64BE(512n, 8);
    if (width === 'u32') b.writeUInt32BE(value, off); else b.writeBigUInt64BE(BigInt(value), off);
    expectCode(await probeBytes(b), code);
  }
  const past = Buffer.from(s);
  past.writeBigUInt64BE(2n ** 62n, 8); // backing offset beyond any file
  past.writeUInt32BE(10, 16);
  expectCode(await probeBytes(past), 'IMAGE_BAD_FIELD');
  const ext = Buffer.from(s);
  ext.writeUInt32BE(0xffffff00, 112 + 4); // first extension's length
  expectCode(await probeBytes(ext), 'IMAGE_BAD_FIELD');
});

test('truncated headers of every seed are refused with a typed error, never read past the file', async (t) => {
  for (const [name, bytes] of Object.entries(seeds(t))) {
    for (const cut of [3, 17, 50, 100, 511]) {
      const r = await probeBytes(bytes.subarray(0, cut), null);
      // a cut through the magic leaves raw; past it, either a typed refusal or facts read from inside the cut
      if (cut < 8 && !(r instanceof ImageError)) assert.equal(r.format, 'raw', `${name} cut at ${cut}`);
      if (!(r instanceof ImageError)) assert.ok(r.bytesRead <= cut, `${name} cut at ${cut} read ${r.bytesRead}`);
    }
  }
});

test('VMDK descriptors: 30,000 extents pass the bound and are refused at once; 300 extents are refused by count', async () => {
  const line = (i: number) => `RW 2048 FLAT "extent-${i}.raw" 0\n`;
  const head = '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\n';
  const big = Buffer.from(head + Array.from({ length: 30000 }, (_, i) => line(i)).join(''));
  expectCode(await probeBytes(big), 'IMAGE_READ_BOUND_EXCEEDED');
  const many = Buffer.from(head + Array.from({ length: 300 }, (_, i) => line(i)).join(''));
  expectCode(await probeBytes(many), 'IMAGE_BAD_FIELD');
});

test('VDI and parallels tables at QEMU\'s limits are reported from the header alone; a VPC table past the file is refused', async (t) => {
  const s = seeds(t);
  const vdi = Buffer.from(s['v.vdi']!);
  vdi.writeUInt32LE(Math.floor((2 ** 31 - 512) / 4), 0x180); // blocks_in_image at the limit
  const par = Buffer.from(s['p.par']!);
  par.writeUInt32LE(Math.floor(0x7fffffff / 4), 32); // bat_entries at the limit
  const vpc = Buffer.from(s['d.vpc']!);
  vpc.writeUInt32BE(Math.floor(0x7fffffff / 4), 512 + 28); // max_table_entries at the limit
  expectCode(await probeBytes(vpc), 'IMAGE_BAD_FIELD'); // QEMU would allocate 2 GiB for it first
  for (const [name, b] of [['vdi', vdi], ['parallels', par]] as const) {
    const r = await probeBytes(b);
    assert.ok(!(r instanceof ImageError), `${name}: ${r instanceof ImageError ? r.message : ''}`);
    assert.ok(r.bytesRead <= 4096, `${name} read ${r.bytesRead}`);
  }
  vdi.writeUInt32LE(0xffffffff, 0x180);
  expectCode(await probeBytes(vdi), 'IMAGE_BAD_FIELD');
});

test('a magic with an unknown version is refused, never guessed', async (t) => {
  const s = seeds(t);
  const qed = Buffer.from(s['e.qed']!);
  qed.writeBigUInt64LE(1n << 20n, 16); // unknown feature bit
  expectCode(await probeBytes(qed), 'IMAGE_UNSUPPORTED_FEATURE');
  const luks2 = Buffer.alloc(4096);
  Buffer.from('LUKS\xba\xbe', 'latin1').copy(luks2);
  luks2.writeUInt16BE(2, 6);
  expectCode(await probeBytes(luks2), 'IMAGE_UNSUPPORTED_VERSION');
  const par = Buffer.from(s['p.par']!);
  par.writeUInt32LE(3, 16);
  expectCode(await probeBytes(par), 'IMAGE_UNSUPPORTED_VERSION');
  const vmdk = Buffer.from(s['s.vmdk']!);
  vmdk.writeUInt32LE(4, 4);
  expectCode(await probeBytes(vmdk), 'IMAGE_UNSUPPORTED_VERSION');
});

test('qcow2 oddities QEMU reads without complaint: an empty backing name, data-file-raw without a data file', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'x.qcow2');
  const make = () => qemuImg(['create', '-q', '-f', 'qcow2', '-u', '-b', 'b.raw', '-F', 'raw', '-o', 'size=1M', path]);
  make();
  const empty = readFileSync(path);
  empty.writeUInt32BE(0, 16); // backing name size 0, offset still set
  writeFileSync(path, empty);
  const info = await probeImage(path);
  assert.equal(info.backingFilename, null);
  assert.equal(qemuInfoOrError(path)['backing-filename'], undefined);
  make();
  const raw = readFileSync(path);
  raw.writeBigUInt64BE(2n, 88); // autoclear: data-file-raw
  writeFileSync(path, raw);
  assert.equal(qemuInfoOrError(path)['error'], undefined);
  assert.equal((await probeImage(path)).dataFile, null);
});

/** qemu-img info's JSON, or {error: stderr} when it refuses. */
function qemuInfoOrError(path: string): Record<string, unknown> {
  try {
    return JSON.parse(qemuImg(['info', '--output=json', path])) as Record<string, unknown>;
  } catch (err) {
    return { error: String((err as { stderr?: unknown }).stderr) };
  }
}

test('a qcow2 with a real table of 65,536 snapshots (QEMU reads it for seconds) is reported from one 512-byte window', async (t) => {
  const tmp = tempDir();
  t.after(tmp.remove);
  const path = join(tmp.dir, 'snaps.qcow2');
  qemuImg(['create', '-q', '-f', 'qcow2', path, '64M']);
  writeFileSync(path, qcow2WithSnapshots(readFileSync(path), 65536));
  const info = await probeImage(path);
  assert.equal(info.virtualSize, 64 << 20);
  assert.equal(info.bytesRead, 512);
  assert.match(info.notes?.join(' ') ?? '', /65536 internal snapshots/);
});
