/**
 * @module vm/helpers-state: a helper's state directory (swtpm's TPM state), kept in the VM's
 * directory: made root-owned 0700, opened by the manager and handed over as an fd, lent to
 * the helper's leased uid for one run (chown) and taken back to root once the helper is gone.
 */
import { closeSync, constants, fchmodSync, lchownSync, lstatSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { VmError } from './errors.js';

/** Makes the directory (root, 0700) when absent and opens it without following a symlink; a former helper's chmod is undone. */
export function openStateDir(path: string, vm: string): number {
  mkdirSync(path, { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
    fchmodSync(fd, 0o700);
    return fd;
  } catch (cause) {
    throw new VmError('VM_START_FAILED', `opening the helper state directory ${path} of VM ${vm} failed`, { context: { vm, path }, cause, suggestions: [`${path} must be a directory, not a symlink`] });
  }
}

/**
 * Gives the directory and its regular files to uid/gid. Anything else in it (a symlink, a
 * hard link, a directory: nothing swtpm makes) is removed first, so a chown never follows
 * a name a former helper planted. Nothing is followed: lchown on names in a directory only
 * root and the helper of the moment can write.
 */
export function chownStateDir(path: string, uid: number, gid: number): void {
  for (const name of readdirSync(path)) {
    const p = join(path, name);
    const st = lstatSync(p);
    if (!st.isFile() || st.nlink !== 1) { rmSync(p, { recursive: true, force: true }); continue; }
    lchownSync(p, uid, gid);
  }
  lchownSync(path, uid, gid);
}

/** Back to root once the helper is gone (teardown; idempotent, and a missing directory is fine). */
export function reclaimStateDir(path: string): void {
  try {
    if (!lstatSync(path).isDirectory()) return;
  } catch {
    return;
  }
  // The directory first: from then on no helper of another run could create names in it.
  lchownSync(path, 0, 0);
  chownStateDir(path, 0, 0);
}

export function closeQuietly(fd: number): void {
  try { closeSync(fd); } catch { /* already closed */ }
}
