/**
 * @module vm/boot-fds: the planned fds the manager makes rather than merely opens: sealed
 * memfd copies of boot files (QEMU opens -kernel/-initrd with plain open(), so it reads them
 * as /proc/self/fd/N), and files first made from a template (the VM's UEFI variable store).
 */
import { closeSync, constants as C, copyFileSync, existsSync, fchmodSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { ImageError, openCheckedSync, ownerAccessCheck, type Owner } from '../image/index.js';
import type { NativeAddon } from '../sys/index.js';
import { VmError } from './errors.js';
import type { PlannedFdView } from './ports.js';
import { reopenReadOnly, type SealedCopyCache } from './sealed-cache.js';

/** A boot file larger than this is refused rather than copied into memory. */
export const SEALED_COPY_MAX = 1024 ** 3;

/**
 * Makes every planned file with a template that does not exist yet: a copy of the template
 * written under a temporary name and renamed into place, so a crash leaves either no file
 * or a whole one. An existing file is kept (the guest's variables live across restarts).
 */
export function seedFromTemplates(fds: readonly PlannedFdView[], vm: string): void {
  for (const f of fds) {
    if (f.kind !== 'file' || f.template === undefined || existsSync(f.path)) continue;
    const tmp = `${f.path}.tmp-${process.pid}`;
    try {
      copyFileSync(f.template, tmp, C.COPYFILE_EXCL);
      const fd = openSync(tmp, C.O_RDWR);
      try { fchmodSync(fd, 0o600); fsyncSync(fd); } finally { closeSync(fd); }
      renameSync(tmp, f.path); // start holds the VM's lock: nobody makes it meanwhile
    } catch (cause) {
      rmSync(tmp, { force: true });
      throw new VmError('VM_START_FAILED', `making ${f.path} as a copy of ${f.template} for VM ${vm} failed`, {
        context: { vm, path: f.path, template: f.template, from: f.from }, cause,
        suggestions: ['check that the firmware package (ovmf) is installed and the VM directory is writable'],
      });
    }
  }
}

/**
 * Fills a sealed memfd with each planned sealed copy; returns read-only fds of them by planned
 * name (the caller closes them). With an `owner` (a daemon VM of another uid) each file is
 * opened only if that uid could read it (IMAGE_OWNER_DENIED), judged on the inode then opened.
 * With a `cache`, a copy of the same unchanged file (opened and checked as above, for the same
 * owner) is reused.
 */
export function openSealedCopies(fds: readonly PlannedFdView[], vm: string, native: Pick<NativeAddon, 'memfdSealed' | 'closeFd'>, owner: Owner | null = null, cache?: SealedCopyCache): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const f of fds) {
      if (f.kind !== 'sealed-copy') continue;
      const statAt = Date.now();
      const fd = openBootFile(f.path, f.from, vm, owner);
      try {
        const st = fstatSync(fd, { bigint: true });
        if (!st.isFile()) throw new VmError('VM_START_FAILED', `${f.from} of VM ${vm}, ${f.path}, is not a regular file`, { context: { vm, field: f.from, path: f.path } });
        if (st.size > BigInt(SEALED_COPY_MAX)) throw new VmError('VM_START_FAILED', `${f.from} of VM ${vm}, ${f.path}, is larger than ${SEALED_COPY_MAX} bytes`, { context: { vm, field: f.from, path: f.path, size: Number(st.size) } });
        const read = (): Buffer => readAll(fd, Number(st.size));
        if (cache !== undefined) out.set(f.name, cache.take(owner === null ? 'self' : `uid:${owner.uid}`, f.name, st, statAt, read));
        else {
          const sealed = native.memfdSealed(`warden-${f.name}`, read());
          try { out.set(f.name, reopenReadOnly(sealed)); } finally { native.closeFd(sealed); }
        }
      } finally {
        closeSync(fd);
      }
    }
  } catch (err) {
    for (const fd of out.values()) native.closeFd(fd);
    throw err;
  }
  return out;
}

/** The boot file opened read-only (checked before open when there is an owner). */
function openBootFile(path: string, from: string, vm: string, owner: Owner | null): number {
  try {
    if (owner === null) return openSync(path, C.O_RDONLY);
    const check = ownerAccessCheck(owner);
    return openCheckedSync(path, { flags: C.O_RDONLY, kinds: ['file'], doing: `opening ${from} of VM ${vm}`, guard: (t) => check(t, from, false) }).fd;
  } catch (cause) {
    if (cause instanceof ImageError && cause.code === 'IMAGE_OWNER_DENIED') throw cause;
    throw new VmError('VM_START_FAILED', `opening ${from} of VM ${vm}, ${path}, failed`, {
      context: { vm, field: from, path }, cause,
      suggestions: ['restore the file; the VM keeps the path its spec had at create (warden validate checks the spec file)'],
    });
  }
}

/** The whole file through one fd, so size and content come from the same file. */
function readAll(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return buf.subarray(0, off);
}
