/**
 * @module image/access: the daemon opens files as root for VMs of other uids: could the VM's
 * owner (a uid and its groups) open the file themselves, read-only or read-write as QEMU gets
 * it? Decided from the mode bits of the file and
 * of every directory above it. ACL entries are not read: a file reachable only through an
 * ACL entry is refused (the conservative side); root may open everything.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ImageError } from './errors.js';
import type { Target } from './open.js';

/** Who a VM belongs to: the uid and every gid (primary and supplementary) of its owner. */
export interface Owner { uid: number; gids: readonly number[] }

export const R_OK = 4;
export const W_OK = 2;
export const X_OK = 1;

/** Whether `who` gets `want` (R_OK|W_OK|X_OK bits) on a file with this mode and owner, as the kernel decides without ACLs. */
export function modeAllows(st: { mode: number; uid: number; gid: number }, who: Owner, want: number): boolean {
  if (who.uid === 0) return true;
  const bits = st.uid === who.uid ? (st.mode >> 6) & 7 : who.gids.includes(st.gid) ? (st.mode >> 3) & 7 : st.mode & 7;
  return (bits & want) === want;
}

/**
 * Why `who` could not open `realPath` (read, plus write when `write`), or null when they could.
 * With `expect`, the file found must be that one (dev, ino: what the caller checked or holds);
 * another one is a denial (it changed while being checked).
 */
export function ownerDenial(realPath: string, who: Owner, write: boolean, expect?: { dev: number; ino: number }): string | null {
  if (who.uid === 0) return null;
  const dirs: string[] = [];
  for (let d = dirname(realPath); ; d = dirname(d)) {
    dirs.unshift(d);
    if (d === dirname(d)) break;
  }
  for (const d of dirs) {
    const st = statSync(d);
    if (!modeAllows(st, who, X_OK)) return `uid ${who.uid} cannot search the directory ${d} (mode ${(st.mode & 0o7777).toString(8)}, owner ${st.uid}:${st.gid})`;
  }
  const st = statSync(realPath);
  if (expect !== undefined && (st.dev !== expect.dev || st.ino !== expect.ino)) return `${realPath} changed while it was checked (now ${st.dev}:${st.ino}, was ${expect.dev}:${expect.ino})`;
  const want = write ? R_OK | W_OK : R_OK;
  if (!modeAllows(st, who, want)) return `uid ${who.uid} cannot ${write ? 'read and write' : 'read'} it (mode ${(st.mode & 0o7777).toString(8)}, owner ${st.uid}:${st.gid})`;
  return null;
}

/**
 * The walker's accessCheck for one owner: refuses any file the walk would open or hand to QEMU
 * that the owner could not open themselves, read-only, or read-write when QEMU gets it so.
 * It judges the very target the walk then holds (its dev/ino), not a name looked up again.
 */
export function ownerAccessCheck(who: Owner): (t: Target, what: string, writable: boolean) => void {
  return (t, what, writable) => {
    const why = ownerDenial(t.realPath, who, writable, { dev: t.dev, ino: t.ino });
    if (why === null) return;
    throw new ImageError('IMAGE_OWNER_DENIED', `${what} ${t.path} would be opened ${writable ? 'read-write' : 'read-only'} for a VM of uid ${who.uid}, but ${why}; it was not opened`, {
      context: { layer: t.path, realPath: t.realPath, uid: who.uid, gids: who.gids, writable },
      suggestions: [writable ? 'give the VM\'s owner access to the file (chown/chmod), or make the disk readOnly' : 'give the VM\'s owner read access to the file and search access to its directories (chmod), or copy it where the owner can read it'],
    });
  };
}

/** A uid as an owner: its groups from the host (`id -G`); a uid with no account has only itself. Root is null (nothing to check). */
export function ownerFromUid(uid: number): Owner | null {
  if (uid === 0) return null;
  let gids: number[] = [];
  try { gids = execFileSync('id', ['-G', '--', String(uid)], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }).trim().split(/\s+/).map(Number).filter(Number.isInteger); } catch { gids = []; }
  return { uid, gids };
}
