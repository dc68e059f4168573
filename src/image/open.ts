/**
 * @module image/open: check before open, then open once. A name is resolved without opening
 * anything (realpath, lstat), checked by the caller's guard (allowed places, file type), held
 * with O_PATH|O_NOFOLLOW (which opens no device, blocks on no FIFO), re-identified through
 * that fd, and only then reopened through /proc/self/fd/N with the access mode needed. The
 * fd returned is therefore the file that was checked; a swap at any point is refused.
 * A name without symlinks (most image chains) takes a shorter road to the same checks: one
 * lstat, the guard, then an openat2 that refuses any symlink (see holdDirect).
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

/** An absolute name with no `.`, `..`, empty or trailing component: resolve() leaves it as it is. */
function isNormalAbsolute(path: string): boolean {
  return path.length > 1 && path[0] === '/' && !path.endsWith('/') && !path.includes('//') && !path.includes('/./') && !path.includes('/../')
    && !path.endsWith('/.') && !path.endsWith('/..');
}

type ImageCalls = Required<Pick<NativeAddon, 'imageLstat' | 'imageHold' | 'imageReopen'>>;
let imageCalls: ImageCalls | null | undefined;
/** The addon's calls for the short road, or null where the addon lacks them (then the long road alone). */
function nativeImageCalls(): ImageCalls | null {
  if (imageCalls === undefined) {
    try {
      const n = loadNative();
      imageCalls = n.imageLstat && n.imageHold && n.imageReopen ? { imageLstat: n.imageLstat, imageHold: n.imageHold, imageReopen: n.imageReopen } : null;
    } catch { imageCalls = null; }
  }
  return imageCalls;
}

/** [dev, ino, mode, size, rdev] from the addon's last call (read at once: every call overwrites it). */
const ST = new Float64Array(5);

function kindOfMode(mode: number): FileKind {
  switch (mode & C.S_IFMT) {
    case C.S_IFREG: return 'file';
    case C.S_IFBLK: return 'block';
    case C.S_IFCHR: return 'char';
    case C.S_IFIFO: return 'fifo';
    case C.S_IFSOCK: return 'socket';
    case C.S_IFDIR: return 'dir';
    case C.S_IFLNK: return 'symlink';
    default: return 'other';
  }
}

/**
 * The short road for a name that has no symlink on the way (the usual chain). One lstat (no
 * open) gives the type and identity of what the name reaches, taking the name as its real
 * path; the guard and the type check run on that, before anything is opened. Then openat2
 * holds the name with O_PATH|O_NOFOLLOW and RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS: it
 * succeeds only if no component is a symlink, i.e. only if the name really is its own real
 * path, so the guard's verdict was about the right name and the object held lies where
 * the guard allowed it (a normalised absolute name reached through no symlink cannot leave
 * the allowed directory: what RESOLVE_BENEATH from its fd and the /proc/self/fd readlink
 * recheck make sure of on the long road). The held fd is then re-identified as there.
 * Returns null, having opened nothing (or closed what it held), whenever the long road
 * must decide: a symlink on the way (the guard may have judged the wrong real path, so its
 * refusal is not final either), no addon calls, a name not in normal form. A name that
 * reaches another file than the one checked once a symlink appeared is refused (changed).
 */
function holdDirect(path: string, o: CheckedOpen, kinds: readonly FileKind[], doing: string): { t: Target; p: number } | null {
  const n = nativeImageCalls();
  if (n === null || !isNormalAbsolute(path)) return null;
  let t: Target;
  try {
    n.imageLstat(path, ST);
    t = { path, realPath: path, kind: kindOfMode(ST[2]!), dev: ST[0]!, ino: ST[1]! };
    if (t.kind === 'symlink') return null;
    o.guard?.(t);
    refuseKind(t, kinds, doing);
  } catch {
    return null;
  }
  let p: number;
  try {
    p = n.imageHold(path, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, ST);
  } catch {
    // A symlink on the way: there from the start (the name reaches the same file through it:
    // the long road decides, its guard on the real path), or swapped in since the check.
    const now = resolveTarget(path, doing);
    if (now.dev !== t.dev || now.ino !== t.ino || now.kind !== t.kind) throw changed(t.path, doing, `it now resolves to ${now.realPath}, ${now.kind} ${now.dev}:${now.ino}, was ${t.kind} ${t.dev}:${t.ino}`);
    return null;
  }
  const [dev, ino, kind] = [ST[0]!, ST[1]!, kindOfMode(ST[2]!)];
  try {
    if (dev !== t.dev || ino !== t.ino || kind !== t.kind) throw changed(t.path, doing, `${t.realPath} is now ${kind} ${dev}:${ino}, was ${t.kind} ${t.dev}:${t.ino}`);
    if (o.expect !== undefined && (o.expect.dev !== dev || o.expect.ino !== ino)) {
      throw changed(t.path, doing, `device:inode ${dev}:${ino}, but ${o.expect.dev}:${o.expect.ino} was probed`);
    }
    return { t, p };
  } catch (err) {
    closeSync(p);
    throw err;
  }
}

/** The short road's reopen: through /proc/self/fd/p (closed here), identity checked on the new fd. */
function reopenDirect(n: ImageCalls, t: Target, p: number, flags: number, doing: string): OpenedFile {
  let fd: number;
  try { fd = n.imageReopen(p, flags, ST); } catch (err) { throw openError(t.path, err, doing); }
  const [dev, ino, size, rdev] = [ST[0]!, ST[1]!, ST[3]!, ST[4]!];
  if (dev !== t.dev || ino !== t.ino) {
    closeSync(fd);
    throw changed(t.path, doing, 'the reopened fd is another file');
  }
  return { ...t, fd, size, rdev };
}

/** The long road: realpath and lstat, the guard and the type check, then the held fd checked against them (hold). */
function holdResolved(path: string, o: CheckedOpen, kinds: readonly FileKind[], doing: string): { t: Target; p: number } {
  const t = resolveTarget(path, doing);
  const root = o.guard?.(t) ?? null;
  refuseKind(t, kinds, doing);
  return { t, p: hold(t, o, doing, root) };
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
  const direct = holdDirect(path, o, kinds, doing);
  if (direct !== null) return reopenDirect(imageCalls!, direct.t, direct.p, o.flags, doing);
  const { t, p } = holdResolved(path, o, kinds, doing);
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
