/**
 * @module vm/migrate-disks: which disks move with a migration when storage is not shared, where
 * they land (the user's path map), and the target's new, empty images of the same size and
 * format that the source mirrors into. The mapping is pure; making the images is not.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, constants as C, openSync, rmSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { WardenError } from '../errors/index.js';
import { VmError } from './errors.js';

/** FROM=TO: a disk image at FROM, or under the directory FROM, is at TO (or under TO) on the target. */
export interface PathRule { from: string; to: string }

/** A disk the target makes and the source copies into. */
export interface DiskCopy { name: string; path: string; format: string; sizeBytes: number }

/** Parses `FROM=TO` (both absolute). */
export function parsePathRule(text: string): PathRule {
  const i = text.indexOf('=');
  const from = text.slice(0, i).replace(/\/+$/, '');
  const to = text.slice(i + 1).replace(/\/+$/, '');
  if (i <= 0 || !isAbsolute(from) || !isAbsolute(to)) {
    throw new WardenError('USAGE_BAD_PATH_MAP', `a path map rule is FROM=TO with two absolute paths, got ${JSON.stringify(text)}`, { context: { rule: text }, suggestions: ['--map-path /var/lib/images=/srv/images'] });
  }
  return { from, to };
}

/** `path` under the first rule that covers it, else unchanged. */
export function mapPath(path: string, rules: readonly PathRule[]): string {
  for (const r of rules) {
    if (path === r.from) return r.to;
    if (path.startsWith(`${r.from}/`)) return `${r.to}${path.slice(r.from.length)}`;
  }
  return path;
}

interface SpecDisk { name: string; image: string; format: string; media?: string; readOnly?: boolean }

/**
 * The spec as the target is to have it (every disk image path mapped) and the disks that are
 * copied: the writable ones (a read-only disk, a cdrom, must already be on the target at its
 * mapped path). `sizes`: each copied disk's virtual size, from the source's QEMU.
 */
export function planDiskCopies(spec: Record<string, unknown>, rules: readonly PathRule[], sizes: Record<string, number>): { spec: Record<string, unknown>; copies: DiskCopy[] } {
  const disks = (spec['disks'] ?? []) as SpecDisk[];
  const mapped = disks.map((d) => ({ ...d, image: mapPath(d.image, rules) }));
  const copies = mapped.filter((d) => (d.media ?? 'disk') === 'disk' && d.readOnly !== true)
    .map((d) => ({ name: d.name, path: d.image, format: d.format, sizeBytes: sizes[d.name] ?? 0 }));
  return { spec: { ...spec, disks: mapped }, copies };
}

/**
 * Target: makes each copy's image, empty, of its size and format; never over an existing file
 * (created O_EXCL first, then formatted by qemu-img). Returns what removes them again.
 */
export function createDiskCopies(copies: readonly DiskCopy[], vm: string): () => void {
  const made: string[] = [];
  const undo = (): void => { for (const p of made) rmSync(p, { force: true }); };
  try {
    for (const d of copies) {
      if (!isAbsolute(d.path) || !Number.isSafeInteger(d.sizeBytes) || d.sizeBytes <= 0 || !/^(qcow2|raw)$/.test(d.format)) {
        throw new VmError('VM_MIGRATE_FAILED', `disk ${d.name} of VM ${vm} cannot be made here: ${d.path} (${d.format}, ${d.sizeBytes} bytes)`, { context: { vm, disk: d }, suggestions: ['copied disks must be qcow2 or raw, at an absolute path'] });
      }
      try {
        closeSync(openSync(d.path, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.O_NOFOLLOW, 0o600));
      } catch (cause) {
        throw new VmError('VM_MIGRATE_FAILED', `cannot create ${d.path} for disk ${d.name} of VM ${vm} (it must not exist yet)`, { context: { vm, path: d.path }, cause, suggestions: ['map the disk elsewhere: --map-path FROM=TO'] });
      }
      made.push(d.path);
      const r = spawnSync('qemu-img', ['create', '-q', '-f', d.format, d.path, String(d.sizeBytes)], { encoding: 'utf8' });
      if (r.status !== 0) throw new VmError('VM_MIGRATE_FAILED', `qemu-img could not make ${d.path} for disk ${d.name} of VM ${vm}`, { context: { vm, path: d.path, stderr: r.stderr } });
    }
    return undo;
  } catch (err) {
    undo();
    throw err;
  }
}
