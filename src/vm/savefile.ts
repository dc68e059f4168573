/**
 * @module vm/savefile: the file `warden save` writes and `warden restore` reads: a fixed
 * magic, the length of a JSON header (the VM's name and validated spec), the header, then
 * QEMU's migration stream. The manager opens the file and reads or writes the header
 * with read(2)/write(2), so the shared file offset is where the stream starts when the fd
 * is handed to QEMU (which reads and writes from the current offset).
 */
import { closeSync, constants as C, fstatSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { VmError } from './errors.js';

const MAGIC = 'WARDENSV1\n';
/** A header larger than this is not ours (specs are a few KiB). */
const HEADER_MAX = 1 << 20;

export interface SaveHeader {
  name: string;
  spec: Record<string, unknown>;
  savedAt: string;
}

/** The header's bytes: magic, 8 hex digits of length, newline, JSON. */
export function encodeHeader(h: SaveHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  return Buffer.concat([Buffer.from(`${MAGIC}${json.length.toString(16).padStart(8, '0')}\n`), json]);
}

/** Creates `file` (never over an existing file or through a symlink) and writes the header; the fd's offset is then where QEMU writes. */
export function createSaveFile(file: string, h: SaveHeader): number {
  let fd: number;
  try {
    fd = openSync(file, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NOCTTY, 0o600);
  } catch (cause) {
    throw new VmError('VM_SAVE_FAILED', `creating the save file ${file} for VM ${h.name} failed`, {
      context: { vm: h.name, file }, cause, suggestions: ['give a path that does not exist yet, in a directory you can write'],
    });
  }
  try {
    writeAll(fd, encodeHeader(h));
    return fd;
  } catch (cause) {
    closeSync(fd);
    rmSync(file, { force: true });
    throw new VmError('VM_SAVE_FAILED', `writing the header of ${file} for VM ${h.name} failed`, { context: { vm: h.name, file }, cause });
  }
}

function writeAll(fd: number, b: Buffer): void {
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off, null);
}

/** Reads exactly `n` bytes at the current offset (read(2), so the offset advances). */
function readExact(fd: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let off = 0; off < n;) {
    const got = readSync(fd, b, off, n - off, null);
    if (got === 0) return b.subarray(0, off);
    off += got;
  }
  return b;
}

/** Opens a save file read-only, checks and reads its header; the fd's offset is then the stream's start. */
export function openSaveFile(file: string): { fd: number; header: SaveHeader } {
  let fd: number;
  try {
    fd = openSync(file, C.O_RDONLY | C.O_NOFOLLOW | C.O_NOCTTY | C.O_NONBLOCK);
  } catch (cause) {
    throw new VmError('VM_RESTORE_FAILED', `opening the save file ${file} failed`, { context: { file }, cause });
  }
  try {
    if (!fstatSync(fd).isFile()) throw bad(file, 'it is not a regular file');
    const head = readExact(fd, MAGIC.length + 9).toString('latin1');
    if (!head.startsWith(MAGIC) || !/^[0-9a-f]{8}\n$/.test(head.slice(MAGIC.length))) throw bad(file, 'it does not start with a warden save header');
    const len = parseInt(head.slice(MAGIC.length, MAGIC.length + 8), 16);
    if (len > HEADER_MAX) throw bad(file, `its header claims ${len} bytes (at most ${HEADER_MAX})`);
    const json = readExact(fd, len);
    if (json.length !== len) throw bad(file, 'it ends inside its header');
    const header = JSON.parse(json.toString('utf8')) as SaveHeader;
    if (typeof header?.name !== 'string' || typeof header.spec !== 'object' || header.spec === null) throw bad(file, 'its header has no VM name and spec');
    return { fd, header };
  } catch (err) {
    closeSync(fd);
    if (err instanceof VmError) throw err;
    throw bad(file, 'its header is not valid JSON', err);
  }
}

/** The VM name a save file's header gives. */
export function saveFileName(file: string): string {
  const { fd, header } = openSaveFile(file);
  closeSync(fd);
  return header.name;
}

function bad(file: string, why: string, cause?: unknown): VmError {
  return new VmError('VM_RESTORE_FAILED', `${file} is not a warden save file: ${why}`, {
    context: { file }, ...(cause === undefined ? {} : { cause }), suggestions: ['give a file written by: warden save NAME FILE'],
  });
}
