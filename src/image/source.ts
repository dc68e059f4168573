/** @module image/source: the small read-only port the prober reads through, and its Node implementation (pread on an O_RDONLY fd). */
import { constants, promises as fsp } from 'node:fs';
import { ImageError } from './errors.js';

/** An open image: its identity and size from fstat, its real path from the fd, and positioned reads. Never writable. */
export interface ImageSource extends FileIdentity {
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** What a file is, taken from the open fd itself (so the checks apply to the file actually opened). */
export interface FileIdentity {
  readonly size: number;
  readonly dev: number;
  readonly ino: number;
  /** The opened file's path with every symlink resolved (/proc/self/fd/N); null unless asked for. */
  readonly realPath: string | null;
}

export interface OpenOptions {
  /** Also learn the real path (one more syscall; only the allowed-directories check needs it). */
  realPath?: boolean;
}

/** Opens images by path; the chain walker takes one so tests can inject faults. */
export interface ImageOpener {
  open(path: string, options?: OpenOptions): Promise<ImageSource>;
  /** Opens, identifies and closes a file that is checked but not read (an external data file, a VMDK extent). */
  identify(path: string, options?: OpenOptions): Promise<FileIdentity>;
  /** A directory's path with every symlink resolved (for the allowed directories themselves). */
  realpath(path: string): Promise<string>;
}

function openError(path: string, err: unknown, doing: string): ImageError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new ImageError('IMAGE_NOT_FOUND', `${doing} ${path}: no such file`, { context: { layer: path }, cause: err });
  }
  return new ImageError('IMAGE_OPEN_FAILED', `${doing} ${path} failed (${code ?? 'error'})`, { context: { layer: path }, cause: err });
}

/**
 * Opens read-only and non-blocking (a FIFO must not hang the walk), then checks through
 * the fd that it is a regular file or block device. Symlinks are followed on purpose:
 * loops are caught by dev/ino, and the allowed-directories check uses the fd's real path.
 */
async function openChecked(path: string, doing: string, options: OpenOptions): Promise<{ fh: fsp.FileHandle } & FileIdentity> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw openError(path, err, doing);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile() && !st.isBlockDevice()) {
      throw new ImageError('IMAGE_NOT_A_FILE', `${doing} ${path}: not a regular file or block device`, { context: { layer: path, mode: st.mode } });
    }
    const size = st.isBlockDevice() ? await blockSize(fh) : st.size;
    const realPath = options.realPath === true ? await fsp.readlink(`/proc/self/fd/${fh.fd}`).catch(() => fsp.realpath(path)) : null;
    return { fh, size, dev: st.dev, ino: st.ino, realPath };
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The real opener (Node, Linux). */
export const nodeImageOpener: ImageOpener = {
  async open(path, options = {}) {
    const { fh, ...id } = await openChecked(path, 'opening image', options);
    return {
      ...id,
      async read(offset, length) {
        const buf = new Uint8Array(length);
        const { bytesRead } = await fh.read(buf, 0, length, offset);
        return bytesRead === length ? buf : buf.subarray(0, bytesRead);
      },
      close: () => fh.close(),
    };
  },
  async identify(path, options = {}) {
    const { fh, ...id } = await openChecked(path, 'checking', options);
    await fh.close();
    return id;
  },
  async realpath(path) {
    try {
      return await fsp.realpath(path);
    } catch (err) {
      throw openError(path, err, 'resolving');
    }
  },
};

/** Size of a block device (stat says 0): from sysfs, by its major:minor. */
async function blockSize(fh: fsp.FileHandle): Promise<number> {
  const { rdev } = await fh.stat();
  const major = Math.floor(rdev / 256) & 0xfff;
  const minor = (rdev & 0xff) | (Math.floor(rdev / 4096) & ~0xff);
  const sectors = Number((await fsp.readFile(`/sys/dev/block/${major}:${minor}/size`, 'utf8')).trim());
  if (!Number.isSafeInteger(sectors)) throw new ImageError('IMAGE_OPEN_FAILED', `reading the size of block device ${major}:${minor} from sysfs gave no number`, { context: { major, minor } });
  return sectors * 512;
}
