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
 * Fills a sealed memfd with each planned sealed copy; returns the fds by planned name (the
 * caller closes them). With an `owner` (a daemon VM of another uid) each file is opened only
 * if that uid could read it (IMAGE_OWNER_DENIED), judged on the inode then opened.
 */
export function openSealedCopies(fds: readonly PlannedFdView[], vm: string, native: Pick<NativeAddon, 'memfdSealed' | 'closeFd'>, owner: Owner | null = null): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const f of fds) {
      if (f.kind !== 'sealed-copy') continue;
      out.set(f.name, native.memfdSealed(`warden-${f.name}`, readBootFile(f.path, f.from, vm, owner)));
    }
  } catch (err) {
    for (const fd of out.values()) native.closeFd(fd);
    throw err;
  }
  return out;
}

/** The whole file, read through one fd so size and content come from the same file (checked before open when there is an owner). */
function readBootFile(path: string, from: string, vm: string, owner: Owner | null): Buffer {
  let fd: number;
  try {
    if (owner === null) fd = openSync(path, C.O_RDONLY);
    else {
      const check = ownerAccessCheck(owner);
      fd = openCheckedSync(path, { flags: C.O_RDONLY, kinds: ['file'], doing: `opening ${from} of VM ${vm}`, guard: (t) => check(t, from, false) }).fd;
    }
  } catch (cause) {
    if (cause instanceof ImageError && cause.code === 'IMAGE_OWNER_DENIED') throw cause;
    throw new VmError('VM_START_FAILED', `opening ${from} of VM ${vm}, ${path}, failed`, {
      context: { vm, field: from, path }, cause,
      suggestions: ['restore the file; the VM keeps the path its spec had at create (warden validate checks the spec file)'],
    });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new VmError('VM_START_FAILED', `${from} of VM ${vm}, ${path}, is not a regular file`, { context: { vm, field: from, path } });
    if (st.size > SEALED_COPY_MAX) throw new VmError('VM_START_FAILED', `${from} of VM ${vm}, ${path}, is larger than ${SEALED_COPY_MAX} bytes`, { context: { vm, field: from, path, size: st.size } });
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}
