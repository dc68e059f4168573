/** @module image/testing: helpers the image tests share: temp dirs with the warden-image prefix, real qemu-img, and the field-by-field oracle comparison. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import assert from 'node:assert/strict';
import type { ImageInfo } from './types.js';

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

/** Asserts that our info agrees with qemu-img's on every field both report. */
export function assertMatchesQemu(ours: ImageInfo, q: QemuInfo, label: string): void {
  const theirs = fromQemu(q);
  const mine: Partial<ImageInfo> = {
    format: ours.format, virtualSize: ours.virtualSize, backingFilename: ours.backingFilename,
    backingFormat: ours.backingFormat, encrypted: ours.encrypted, dataFile: ours.dataFile,
    dirty: ours.dirty, corrupt: ours.corrupt,
  };
  assert.deepEqual(mine, theirs, `${label}: prober vs qemu-img info`);
}
