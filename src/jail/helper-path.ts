/**
 * @module jail/helper-path: the exec helper at a path the jail's uid can reach. bwrap runs
 * as that uid and bind-mounts the helper by path, so a helper under a 0700 directory (a
 * checkout in /root) is copied, once per content, to a root-owned world-searchable place.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';

/** Where unreachable helpers are copied (root-owned, 0755; one subdirectory per helper content). */
export const HELPER_COPY_DIR = '/run/warden-exec';

/** Whether every directory above `path` lets any uid through (o+x). */
function reachableByAnyone(path: string): boolean {
  for (let d = dirname(path); ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) return false;
    if (d === '/') return true;
  }
}

/**
 * The copy made for a helper file, by path, with the file's identity when it was hashed: a
 * launch re-hashed the whole helper (~0.8 MB, ~2 ms) every time. A rebuilt or edited helper
 * has another inode, size, mtime or ctime, and is hashed (and copied) again.
 */
const copies = new Map<string, { id: string; copy: string }>();

const identity = (st: Stats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;

/** `helper` itself when any uid can reach it, else its content-addressed copy under `copyDir`. */
export function reachableHelper(helper: string, copyDir: string = HELPER_COPY_DIR): string {
  if (reachableByAnyone(helper)) return helper;
  const id = identity(statSync(helper));
  const known = copies.get(`${copyDir}\0${helper}`);
  if (known?.id === id && existsSync(known.copy)) return known.copy;
  const copy = copyOf(helper, copyDir);
  copies.set(`${copyDir}\0${helper}`, { id, copy });
  return copy;
}

function copyOf(helper: string, copyDir: string): string {
  const bytes = readFileSync(helper);
  const dir = join(copyDir, createHash('sha256').update(bytes).digest('hex').slice(0, 16));
  const copy = join(dir, 'warden-exec');
  if (existsSync(copy)) return copy;
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  chmodSync(copyDir, 0o755);
  chmodSync(dir, 0o755);
  const tmp = `${copy}.tmp-${process.pid}`;
  copyFileSync(helper, tmp);
  chmodSync(tmp, 0o555);
  renameSync(tmp, copy);
  return copy;
}
