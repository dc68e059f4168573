/** @module image/source: the small read-only port the prober reads through, and its Node implementation (pread on an O_RDONLY fd). */
import { close, closeSync, constants, promises as fsp, read, readSync, realpathSync } from 'node:fs';
import { promisify } from 'node:util';
import { ImageError } from './errors.js';
import { openCheckedSync, type FileKind, type Guard } from './open.js';

/** An open image: its identity and size from fstat, its real path from the fd, and positioned reads. Never writable. */
export interface ImageSource extends FileIdentity {
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** What a file is, taken from the checked open fd itself (so the checks apply to the file actually opened). */
export interface FileIdentity {
  readonly size: number;
  readonly dev: number;
  readonly ino: number;
  /** The opened file's path with every symlink resolved (checked again on the held fd). */
  readonly realPath: string | null;
  /** Its type (regular file or block device; nothing else is ever opened). */
  readonly kind?: FileKind;
}

export interface OpenOptions {
  /** Kept for callers that ask; the real path is always learnt now (the checks need it before the open). */
  realPath?: boolean;
  /** Runs on the resolved name before anything is opened, and refuses by throwing (allowed places, devices). */
  guard?: Guard;
}

/** Opens images by path; the chain walker takes one so tests can inject faults. */
export interface ImageOpener {
  open(path: string, options?: OpenOptions): Promise<ImageSource>;
  /** Checks, opens, identifies and closes a file that is not read (an external data file, a VMDK extent). */
  identify(path: string, options?: OpenOptions): Promise<FileIdentity>;
  /** A directory's path with every symlink resolved (for the allowed directories themselves). */
  realpath(path: string): Promise<string>;
}

/**
 * Resolves and checks the name first (the guard, then: a regular file or block device),
 * and only then opens it read-only through the checked O_PATH fd (see open.ts): a FIFO, a
 * character device or a name outside the allowed places is never opened.
 */
async function openReadOnly(path: string, doing: string, options: OpenOptions): Promise<{ fd: number } & FileIdentity> {
  const f = openCheckedSync(path, { flags: constants.O_RDONLY, doing, ...(options.guard === undefined ? {} : { guard: options.guard }) });
  try {
    const size = f.kind === 'block' ? await blockSize(f.rdev) : f.size;
    return { fd: f.fd, size, dev: f.dev, ino: f.ino, realPath: f.realPath, kind: f.kind };
  } catch (err) {
    closeSync(f.fd);
    throw err;
  }
}

const pread = promisify(read);
const closeFd = promisify(close);

/** The real opener (Node, Linux). */
export const nodeImageOpener: ImageOpener = {
  async open(path, options = {}) {
    const { fd, ...id } = await openReadOnly(path, 'opening image', options);
    // A regular file is read and closed synchronously: a header read is one pread of a few
    // KiB from the page cache, microseconds, where a trip through libuv's thread pool costs
    // tens (three per layer made a 100-layer walk ~100 us per layer). A block device keeps
    // the thread pool: its reads can stall (a lost iSCSI path) and must not block the loop.
    const sync = id.kind !== 'block';
    let closed = false;
    return {
      ...id,
      async read(offset, length) {
        const buf = new Uint8Array(length);
        const bytesRead = sync ? readSync(fd, buf, 0, length, offset) : (await pread(fd, buf, 0, length, offset)).bytesRead;
        return bytesRead === length ? buf : buf.subarray(0, bytesRead);
      },
      async close() {
        if (closed) return;
        closed = true;
        if (sync) closeSync(fd);
        else await closeFd(fd);
      },
    };
  },
  async identify(path, options = {}) {
    const { fd, ...id } = await openReadOnly(path, 'checking', options);
    closeSync(fd);
    return id;
  },
  async realpath(path) {
    // Synchronous, like the checks' own lstat and realpath (open.ts): a directory's realpath is
    // a few syscalls, where the thread pool's round trip cost a walk ~0.1-0.7 ms.
    try {
      return realpathSync.native(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ImageError(code === 'ENOENT' || code === 'ENOTDIR' ? 'IMAGE_NOT_FOUND' : 'IMAGE_OPEN_FAILED', `resolving ${path} failed (${code ?? 'error'})`, { context: { layer: path }, cause: err });
    }
  },
};

/** Size of a block device (stat says 0): from sysfs, by its major:minor. */
async function blockSize(rdev: number): Promise<number> {
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & ~0xff);
  const sectors = Number((await fsp.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors)) throw new ImageError('IMAGE_OPEN_FAILED', `reading the size of block device ${major}:${minor} from sysfs gave no number`, { context: { major, minor } });
  return sectors * 512;
}
