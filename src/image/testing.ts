/** @module image/testing: helpers the image tests share: temp dirs with the warden-image prefix, real qemu-img, and the field-by-field oracle comparison. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { bochsImage, cloopImage, dmgImage, isoImage } from './fixtures.js';
import assert from 'node:assert/strict';
import type { ImageFormat, ImageInfo } from './types.js';

/** A fresh temp dir (/tmp/warden-image-*) and its removal, for t.after. */
export function tempDir(): { dir: string; remove: () => void } {
  const dir = mkdtempSync('/tmp/warden-image-');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs the real qemu-img (never through a shell); throws with its stderr on failure. */
export function qemuImg(args: string[], cwd?: string): string {
  return execFileSync('qemu-img', args, { cwd, encoding: 'utf8', timeout: 30_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export type QemuInfo = Record<string, unknown> & { 'format-specific'?: { type: string; data: Record<string, unknown> } };

/** `qemu-img info --output=json` on one image (format forced when given). */
export function qemuInfo(path: string, format?: string): QemuInfo {
  const args = ['info', '--output=json', ...(format === undefined ? [] : ['-f', format]), path];
  return JSON.parse(qemuImg(args)) as QemuInfo;
}

/** `qemu-img info --backing-chain --output=json`, top first. */
export function qemuChain(path: string, format?: string): QemuInfo[] {
  const args = ['info', '--backing-chain', '--output=json', ...(format === undefined ? [] : ['-f', format]), path];
  return JSON.parse(qemuImg(args)) as QemuInfo[];
}

/** The fields of ImageInfo that qemu-img also reports, in our names, taken from qemu-img's JSON. */
export function fromQemu(q: QemuInfo): Partial<ImageInfo> {
  const data = q['format-specific']?.data ?? {};
  return {
    format: q['format'] as ImageInfo['format'],
    virtualSize: q['virtual-size'] as number,
    backingFilename: (q['backing-filename'] as string | undefined) ?? null,
    backingFormat: (q['backing-filename-format'] as ImageInfo['format'] | undefined) ?? null,
    encrypted: q['encrypted'] === true,
    dataFile: (data['data-file'] as string | undefined) ?? null,
    dirty: q['dirty-flag'] === true,
    corrupt: data['corrupt'] === true,
  };
}

/** qemu-img's format-specific facts in our names (only those the prober also reports). */
export function specificFromQemu(q: QemuInfo): Record<string, unknown> {
  const d = q['format-specific']?.data ?? {};
  const type = q['format-specific']?.type;
  if (type === 'qcow2') {
    const out: Record<string, unknown> = {
      compat: d['compat'], clusterSize: q['cluster-size'], refcountBits: d['refcount-bits'], lazyRefcounts: d['lazy-refcounts'],
      extendedL2: d['extended-l2'], compressionType: d['compression-type'],
    };
    if (d['data-file-raw'] !== undefined) out['dataFileRaw'] = d['data-file-raw'];
    const enc = d['encrypt'] as { format?: string } | undefined;
    if (enc?.format !== undefined) out['encryption'] = enc.format;
    return out;
  }
  if (type === 'vmdk') return { createType: d['create-type'] };
  return {};
}

/** Asserts that our info agrees with qemu-img's on every field both report. */
export function assertMatchesQemu(ours: ImageInfo, q: QemuInfo, label: string): void {
  const theirs = fromQemu(q);
  const mine: Partial<ImageInfo> = {
    format: ours.format, virtualSize: ours.virtualSize, backingFilename: ours.backingFilename,
    backingFormat: ours.backingFormat, encrypted: ours.encrypted, dataFile: ours.dataFile,
    dirty: ours.dirty, corrupt: ours.corrupt,
  };
  assert.deepEqual(mine, theirs, `${label}: prober vs qemu-img info`);
  const spec = specificFromQemu(q);
  if (Object.keys(spec).length > 0) {
    const ours2 = Object.fromEntries(Object.keys(spec).map((k) => [k, ours.formatSpecific?.[k]]));
    assert.deepEqual(ours2, spec, `${label}: format-specific facts vs qemu-img info`);
  }
}

/** Seeds for the fuzzer: real headers from qemu-img in every format it creates, plus the spec-built ones. */
export function fuzzSeeds(): Array<{ name: string; bytes: Uint8Array; format: ImageFormat }> {
  const tmp = tempDir();
  try {
    const made: Array<[string, string[]]> = [
      ['qcow2-v3', ['-f', 'qcow2', '-o', 'lazy_refcounts=on']], ['qcow2-v2', ['-f', 'qcow2', '-o', 'compat=0.10']],
      ['qcow2-backing', ['-f', 'qcow2', '-u', '-b', 'base name.raw', '-F', 'raw']], ['qcow2-data', ['-f', 'qcow2', '-o', 'data_file=d.bin']],
      ['qcow', ['-f', 'qcow', '-u', '-b', 'b.raw', '-F', 'raw']], ['qed', ['-f', 'qed', '-u', '-b', 'b.raw', '-F', 'raw']],
      ['vmdk', ['-f', 'vmdk']], ['vmdk-stream', ['-f', 'vmdk', '-o', 'subformat=streamOptimized']],
      ['vmdk-desc', ['-f', 'vmdk', '-o', 'subformat=monolithicFlat']], ['vdi', ['-f', 'vdi']], ['vpc', ['-f', 'vpc']],
      ['vpc-fixed', ['-f', 'vpc', '-o', 'subformat=fixed']], ['vhdx', ['-f', 'vhdx']], ['parallels', ['-f', 'parallels']],
      ['qcow2-zstd', ['-f', 'qcow2', '-o', 'compression_type=zstd']], ['qcow2-l2', ['-f', 'qcow2', '-o', 'extended_l2=on']],
    ];
    const seeds: Array<{ name: string; bytes: Uint8Array; format: ImageFormat }> = made.map(([name, args]) => {
      const path = `${tmp.dir}/${name}`;
      qemuImg(['create', '-q', ...args, path, '2M'], tmp.dir);
      return { name, bytes: new Uint8Array(readFileSync(path)), format: args[1] as ImageFormat };
    });
    seeds.push(qcow2Seed(tmp.dir, 'qcow2-enc', [...LUKS_SECRET, '-f', 'qcow2', '-o', `encrypt.format=luks,${luksCreateOptions('encrypt.')}`]));
    const bitmap = qcow2Seed(tmp.dir, 'qcow2-bitmap', ['-f', 'qcow2'], (path) => qemuImg(['bitmap', '--add', path, 'b0']));
    seeds.push(bitmap);
    const built = [
      { name: 'bochs', bytes: bochsImage(1 << 20), format: 'bochs' as const }, { name: 'cloop', bytes: cloopImage(4), format: 'cloop' as const },
      { name: 'dmg', bytes: dmgImage(2048), format: 'dmg' as const }, { name: 'iso', bytes: isoImage(), format: 'raw' as const },
      { name: 'luks', bytes: luksHeader(), format: 'luks' as const },
    ];
    // plain Uint8Array copies: a Buffer's slice() is a view, and mutations must not reach the seed
    return [...seeds, ...built].map((s) => ({ name: s.name, bytes: new Uint8Array(s.bytes), format: s.format }));
  } finally {
    tmp.remove();
  }
}

/** A qcow2 seed made with extra create arguments (and an optional step after), with LUKS's flaky benchmark retried. */
function qcow2Seed(dir: string, name: string, args: string[], after?: (path: string) => void): { name: string; bytes: Uint8Array; format: ImageFormat } {
  const path = `${dir}/${name}`;
  createRetrying(['create', '-q', ...args, path, '2M'], dir);
  after?.(path);
  return { name, bytes: new Uint8Array(readFileSync(path)), format: 'qcow2' };
}

/**
 * LUKS create options that keep qemu-img's key-derivation benchmark measurable.
 * QEMU times 32,768 PBKDF2 rounds by the thread's CPU time and gives up ("Unable to get
 * accurate CPU usage") when that reads 0 ms. With tick-based CPU accounting (4 ms ticks
 * here) and SHA-NI, SHA-256 rounds finish in ~3 ms and about one create in four failed;
 * SHA-512 has no such instructions and takes several ticks (0 failures in 40 creates).
 * A 10 ms iteration target keeps each create near 2 s. `prefix` is 'encrypt.' for qcow2.
 */
export function luksCreateOptions(prefix = ''): string {
  return `${prefix}key-secret=s0,${prefix}hash-alg=sha512,${prefix}iter-time=10`;
}

/** The secret object that {@link luksCreateOptions} names. */
export const LUKS_SECRET = ['--object', 'secret,id=s0,data=warden'];

/** Creates with qemu-img, retrying the LUKS benchmark's rare 0 ms reading (see {@link luksCreateOptions}). */
export function createRetrying(args: string[], cwd: string): void {
  for (let attempt = 1; ; attempt++) {
    try {
      qemuImg(args, cwd);
      return;
    } catch (err) {
      if (attempt >= 8 || !/accurate CPU usage/.test(String((err as { stderr?: unknown }).stderr))) throw err;
    }
  }
}

/** A LUKS1 header with no key slots (the prober reads only magic, version, cipher and payload offset). */
function luksHeader(): Uint8Array {
  const b = Buffer.alloc(8192);
  Buffer.from('LUKS\xba\xbe', 'latin1').copy(b);
  b.writeUInt16BE(1, 6);
  Buffer.from('aes').copy(b, 8);
  Buffer.from('xts-plain64').copy(b, 40);
  b.writeUInt32BE(8, 104);
  return new Uint8Array(b);
}
