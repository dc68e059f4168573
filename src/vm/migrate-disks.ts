/**
 * @module vm/migrate-disks: which disks move with a migration when storage is not shared, where
 * they land (the user's path map), and the target's new, empty images of the same size and
 * format that the source mirrors into. The mapping is pure; making the images is not.
 */
import { closeSync, constants as C, fstatSync, fsyncSync, ftruncateSync, lstatSync, openSync, readlinkSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, isAbsolute, normalize } from 'node:path';
import { WardenError } from '../errors/index.js';
import { DEFAULT_POLICY_FILE, qcow2Empty, type HostPolicy } from '../image/index.js';
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

/** `dir` is `place` or under it (both real paths). */
const within = (dir: string, place: string): boolean => dir === place || dir.startsWith(place.endsWith('/') ? place : `${place}/`);

/**
 * Target: makes each copy's image, empty, of its size and format, in a place the host's image
 * policy allows (imageDirs; a path map names any path, so its own directory counts for nothing).
 * The directory is opened without following its last component and its real path checked; the
 * file is created through that fd (O_EXCL, O_NOFOLLOW, 0600) and written by the manager (a
 * qcow2 header, or a raw file's size), never opened by name by a tool. Refusals are
 * VM_MIGRATE_REFUSED naming `copies[i].path`; nothing is left behind. Returns what removes them.
 */
export function createDiskCopies(copies: readonly DiskCopy[], vm: string, host: HostPolicy): () => void {
  const made: Array<{ path: string; dev: number; ino: number }> = [];
  const undo = (): void => {
    for (const m of made) {
      try { const st = lstatSync(m.path); if (st.dev === m.dev && st.ino === m.ino) rmSync(m.path, { force: true }); } catch { /* already gone */ }
    }
  };
  try {
    copies.forEach((d, i) => made.push(createCopy(d, `copies[${i}].path`, vm, host)));
    return undo;
  } catch (err) {
    undo();
    throw err;
  }
}

function createCopy(d: DiskCopy, field: string, vm: string, host: HostPolicy): { path: string; dev: number; ino: number } {
  const ctx = { vm, disk: d.name, field, path: d.path };
  if (!isAbsolute(d.path) || normalize(d.path) !== d.path || basename(d.path) === '' || !Number.isSafeInteger(d.sizeBytes) || d.sizeBytes <= 0 || d.sizeBytes % 512 !== 0 || !/^(qcow2|raw)$/.test(d.format)) {
    throw new VmError('VM_MIGRATE_FAILED', `${field}: disk ${d.name} of VM ${vm} cannot be made here: ${d.path} (${d.format}, ${d.sizeBytes} bytes)`, { context: { ...ctx, copy: d }, suggestions: ['copied disks must be qcow2 or raw, of a whole number of 512-byte sectors, at a normalized absolute path'] });
  }
  const refuse = (why: string, cause?: unknown): VmError => new VmError('VM_MIGRATE_REFUSED', `${field}: disk ${d.name} of VM ${vm} may not be made at ${d.path}: ${why}`, {
    context: { ...ctx, imageDirs: host.imageDirs, policy: host.file ?? DEFAULT_POLICY_FILE }, ...(cause === undefined ? {} : { cause }),
    suggestions: [`map the disk into a directory listed in imageDirs of the host policy ${host.file ?? DEFAULT_POLICY_FILE} ($WARDEN_POLICY) on the target: --map-path FROM=TO`],
  });
  let dirFd: number;
  try {
    dirFd = openSync(dirname(d.path), C.O_RDONLY | C.O_DIRECTORY | C.O_NOFOLLOW);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw refuse(code === 'ELOOP' || code === 'ENOTDIR' ? `its directory ${dirname(d.path)} is a symbolic link or not a directory` : `its directory ${dirname(d.path)} cannot be opened (${code ?? 'error'})`, cause);
  }
  try {
    const real = readlinkSync(`/proc/self/fd/${dirFd}`);
    const places = host.imageDirs.flatMap((p) => { try { return [p, realpathSync(p)]; } catch { return [p]; } });
    if (!places.some((p) => within(real, p))) {
      throw refuse(host.imageDirs.length === 0 ? `the host policy ${host.file ?? DEFAULT_POLICY_FILE} lists no imageDirs, so no copy may be made` : `its directory is ${real}, outside the host's imageDirs (${host.imageDirs.join(', ')})`);
    }
    let fd: number;
    try {
      fd = openSync(`/proc/self/fd/${dirFd}/${basename(d.path)}`, C.O_CREAT | C.O_EXCL | C.O_WRONLY | C.O_NOFOLLOW, 0o600);
    } catch (cause) {
      throw new VmError('VM_MIGRATE_FAILED', `${field}: cannot create ${d.path} for disk ${d.name} of VM ${vm} (it must not exist yet)`, { context: ctx, cause, suggestions: ['map the disk elsewhere: --map-path FROM=TO'] });
    }
    const st = fstatSync(fd);
    const made = { path: d.path, dev: st.dev, ino: st.ino };
    try {
      if (d.format === 'qcow2') { const b = qcow2Empty(d.sizeBytes); let off = 0; while (off < b.length) off += writeSync(fd, b, off, b.length - off, off); }
      else ftruncateSync(fd, d.sizeBytes);
      fsyncSync(fd);
    } catch (cause) {
      rmSync(`/proc/self/fd/${dirFd}/${basename(d.path)}`, { force: true });
      throw new VmError('VM_MIGRATE_FAILED', `${field}: cannot write ${d.path} for disk ${d.name} of VM ${vm}`, { context: ctx, cause });
    } finally {
      closeSync(fd);
    }
    return made;
  } finally {
    closeSync(dirFd);
  }
}
