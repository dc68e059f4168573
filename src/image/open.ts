/**
 * @module image/open: check before open, then open once. A name is resolved without opening
 * anything (realpath, lstat), checked by the caller's guard (allowed places, file type), held
 * with O_PATH|O_NOFOLLOW (which opens no device, blocks on no FIFO), re-identified through
 * that fd, and only then reopened through /proc/self/fd/N with the access mode needed. The
 * fd returned is therefore the file that was checked; a swap at any point is refused.
 */
import { closeSync, constants as C, fstatSync, lstatSync, openSync, readlinkSync, realpathSync, type Stats } from 'node:fs';
import { relative } from 'node:path';
import { loadNative, type NativeAddon } from '../sys/index.js';
import { ImageError } from './errors.js';

/** O_PATH (Linux; Node does not export it): an fd that names a file without opening it. */
export const O_PATH = 0o10000000;

export type FileKind = 'file' | 'block' | 'char' | 'fifo' | 'socket' | 'dir' | 'symlink' | 'other';

/** What a name resolves to, learnt without opening it. */
export interface Target {
  /** The name as asked for (absolute). */
  path: string;
  /** The name with every symlink resolved. */
  realPath: string;
  kind: FileKind;
  dev: number;
  ino: number;
}

/**
 * Throws (an ImageError) to refuse a target; runs before anything is opened. May return the
 * allowed directory the target lies in: the open then resolves beneath it (openat2).
 */
export type Guard = (t: Target) => string | void;

export interface CheckedOpen {
  /** Access mode and extra flags for the final fd (O_RDONLY, O_RDWR, O_DIRECT ...). */
  flags: number;
  /** File types that may be opened (default: regular files and block devices). */
  kinds?: readonly FileKind[];
  guard?: Guard;
  /** The file must be this one (dev, ino): what a probe saw earlier. */
  expect?: { dev: number; ino: number };
  /** Words for messages: "opening image", "checking data file" ... */
  doing?: string;
}

export interface OpenedFile extends Target {
  fd: number;
  /** Bytes (0 for block devices: see the prober's blockSize). */
  size: number;
  rdev: number;
}

export function kindOf(st: Stats): FileKind {
  if (st.isFile()) return 'file';
  if (st.isBlockDevice()) return 'block';
  if (st.isCharacterDevice()) return 'char';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

function openError(path: string, err: unknown, doing: string): ImageError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ImageError('IMAGE_NOT_FOUND', `${doing} ${path}: no such file`, { context: { layer: path }, cause: err });
  }
  return new ImageError('IMAGE_OPEN_FAILED', `${doing} ${path} failed (${code ?? 'error'})`, { context: { layer: path }, cause: err });
}

/** Resolves a name to its real path and type with realpath and lstat: nothing is opened. */
export function resolveTarget(path: string, doing = 'resolving'): Target {
  try {
    const realPath = realpathSync(path);
    const st = lstatSync(realPath);
    return { path, realPath, kind: kindOf(st), dev: st.dev, ino: st.ino };
  } catch (err) {
    throw openError(path, err, doing);
  }
}

function changed(path: string, doing: string, what: string): ImageError {
  return new ImageError('IMAGE_CHANGED', `${doing} ${path}: the file changed while it was being checked (${what}); nothing was opened`, {
    context: { layer: path, changed: what }, suggestions: ['something is replacing files in the image directory: find out what, then retry'],
  });
}

function refuseKind(t: Target, kinds: readonly FileKind[], doing: string): void {
  if (kinds.includes(t.kind)) return;
  throw new ImageError('IMAGE_NOT_A_FILE', `${doing} ${t.path}${t.realPath === t.path ? '' : ` (really ${t.realPath})`}: a ${t.kind}, not ${kinds.map((k) => (k === 'file' ? 'a regular file' : `a ${k} device`)).join(' or ')}; it was not opened`, {
    context: { layer: t.path, realPath: t.realPath, kind: t.kind },
  });
}

const AT_FDCWD = -100;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;

type Openat2 = NonNullable<NativeAddon['openat2']>;
let openat2: Openat2 | null | undefined;
/** The addon's openat2, or null where the addon or the syscall is missing (then open(2) and the recheck below). */
function nativeOpenat2(): Openat2 | null {
  if (openat2 === undefined) {
    try { openat2 = loadNative().openat2 ?? null; } catch { openat2 = null; }
  }
  return openat2;
}

/**
 * O_PATH|O_NOFOLLOW on the checked real path. With openat2 the kernel resolves it beneath
 * the allowed directory (`root`) through no symlink and no magic link, so a directory swapped
 * for a symlink since realpath fails here; without it, the recheck in hold() catches that.
 */
function openPath(t: Target, root: string | null): number {
  const o2 = nativeOpenat2();
  if (o2 !== null) {
    const flags = O_PATH | C.O_NOFOLLOW;
    const resolveFlags = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    try {
      if (root === null || root === '/' || !t.realPath.startsWith(`${root}/`)) return o2(AT_FDCWD, t.realPath, flags, resolveFlags);
      const dir = o2(AT_FDCWD, root, O_PATH | C.O_DIRECTORY | C.O_NOFOLLOW, resolveFlags);
      try { return o2(dir, relative(root, t.realPath), flags, resolveFlags | RESOLVE_BENEATH); } finally { closeSync(dir); }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOSYS') throw err;
      openat2 = null;
    }
  }
  return openSync(t.realPath, O_PATH | C.O_NOFOLLOW);
}

/** Holds the target with O_PATH|O_NOFOLLOW and checks that the held fd is the target that was checked. */
function hold(t: Target, o: CheckedOpen, doing: string, root: string | null): number {
  let p: number;
  try { p = openPath(t, root); } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ELOOP/EXDEV: a symlink or an escape appeared on the way since the name was checked.
    if (code === 'ELOOP' || code === 'EXDEV') throw changed(t.path, doing, `resolving ${t.realPath} again met a symlink or left ${root ?? '/'} (${code})`);
    throw openError(t.path, err, doing);
  }
  try {
    const st = fstatSync(p);
    if (st.dev !== t.dev || st.ino !== t.ino || kindOf(st) !== t.kind) throw changed(t.path, doing, `${t.realPath} is now ${kindOf(st)} ${st.dev}:${st.ino}, was ${t.kind} ${t.dev}:${t.ino}`);
    // A directory on the way may have been swapped for a symlink since realpath: where the fd really is gets checked again.
    const real = readlinkSync(`/proc/self/fd/${p}`);
    if (real !== t.realPath) throw changed(t.path, doing, `it resolved to ${t.realPath} and now lies at ${real}`);
    if (o.expect !== undefined && (o.expect.dev !== st.dev || o.expect.ino !== st.ino)) {
      throw changed(t.path, doing, `device:inode ${st.dev}:${st.ino}, but ${o.expect.dev}:${o.expect.ino} was probed`);
    }
    return p;
  } catch (err) {
    closeSync(p);
    throw err;
  }
}

/**
 * Opens `path` for real only after the guard and the type check passed on the resolved
 * name and on the held O_PATH fd. The final open goes through /proc/self/fd/N of the held
 * fd (same inode by construction) with O_NONBLOCK|O_NOCTTY, so it never blocks on a FIFO
 * and never acquires a controlling tty. The caller owns the returned fd.
 */
export function openCheckedSync(path: string, o: CheckedOpen): OpenedFile {
  const doing = o.doing ?? 'opening';
  const kinds = o.kinds ?? ['file', 'block'];
  const t = resolveTarget(path, doing);
  const root = o.guard?.(t) ?? null;
  refuseKind(t, kinds, doing);
  const p = hold(t, o, doing, root);
  let fd: number;
  try {
    fd = openSync(`/proc/self/fd/${p}`, o.flags | C.O_NONBLOCK | C.O_NOCTTY);
  } catch (err) {
    throw openError(t.path, err, doing);
  } finally {
    closeSync(p);
  }
  const st = fstatSync(fd);
  if (st.dev !== t.dev || st.ino !== t.ino) {
    closeSync(fd);
    throw changed(t.path, doing, 'the reopened fd is another file');
  }
  return { ...t, fd, size: st.size, rdev: st.rdev };
}
