/**
 * @module vm/snapshot-dir: the directory of a disk's layers, opened once through the image module's
 * check-before-open and identified (its device and inode, or a layer it must hold), so snapshot
 * files are created (openat2 O_CREAT|O_EXCL beneath it, through no symlink) and removed
 * (unlink of /proc/self/fd/DIR/NAME) there and nowhere else, even if the owner swaps a
 * directory on the path for a symlink meanwhile.
 */
import { closeSync, constants as C, fchmodSync, fstatSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ImageError, openCheckedSync, O_PATH } from '../image/index.js';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';

export interface FileId { dev: number; ino: number }

const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const RESOLVE_BENEATH = 0x08;
/** A name in the directory: resolved beneath its fd, through no symlink of any kind. */
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

function openat2(dirfd: number, name: string, flags: number): number {
  const o2 = loadNative().openat2;
  if (o2 === undefined) throw new VmError('VM_SNAPSHOT_FAILED', 'the native addon has no openat2 (run "npm run setup" to rebuild it)', { context: {} });
  return o2(dirfd, name, flags, BENEATH);
}

function oneName(name: string): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/')) throw new RangeError(`${JSON.stringify(name)} is not one file name`);
  return name;
}

/** A policy refusal (IMAGE_CHANGED: exit 3, like a start that finds a layer swapped). */
function moved(vm: string, path: string, why: string, cause?: unknown): ImageError {
  return new ImageError('IMAGE_CHANGED', `VM ${vm}: the disk directory ${path} ${why}; nothing was created, opened or removed there`, {
    context: { vm, dir: path, layer: path }, ...(cause === undefined ? {} : { cause }),
    suggestions: ['something replaced the directory (or a directory above it), e.g. with a symlink: put it back, then retry'],
  });
}

export class DiskDir {
  private constructor(readonly vm: string, readonly path: string, readonly fd: number, readonly id: FileId) {}

  /**
   * Opens directory `path` (image openCheckedSync: O_PATH held through no swapped symlink, then
   * reopened by /proc/self/fd). `expect`: its identity when the manager first used it; without
   * one the caller anchors it (`anchor`) by a layer the chain walk or the record identified.
   */
  static open(vm: string, path: string, expect?: FileId): DiskDir {
    let o;
    try {
      o = openCheckedSync(path, { flags: C.O_RDONLY | C.O_DIRECTORY, kinds: ['dir'], doing: `opening the disk directory of VM ${vm}`, ...(expect === undefined ? {} : { expect }) });
    } catch (cause) {
      if ((cause as { code?: string }).code === 'IMAGE_NOT_FOUND') throw cause;
      throw moved(vm, path, expect === undefined ? 'could not be opened' : `is not the directory (${expect.dev}:${expect.ino}) the snapshot's files were made in`, cause);
    }
    return new DiskDir(vm, path, o.fd, { dev: o.dev, ino: o.ino });
  }

  /** The directory of `file`, anchored: `file` must be in it, as `id` (the layer the walk or the record saw). */
  static of(vm: string, file: string, id: FileId, expect?: FileId): DiskDir {
    const dir = DiskDir.open(vm, dirname(file), expect);
    try {
      dir.anchor(basename(file), id);
      return dir;
    } catch (err) {
      dir.close();
      throw err;
    }
  }

  /** The entry `name` (not followed), or null when there is none. */
  stat(name: string): Stats | null {
    let p: number;
    try { p = openat2(this.fd, oneName(name), O_PATH | C.O_NOFOLLOW); } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try { return fstatSync(p); } finally { closeSync(p); }
  }

  /** Refuses unless `name` here is the file `id`; returns its stat (owner of a new overlay). */
  anchor(name: string, id: FileId): Stats {
    let st: Stats | null;
    try { st = this.stat(name); } catch (cause) { throw moved(this.vm, this.path, `has no usable ${name}`, cause); }
    if (st === null || st.dev !== id.dev || st.ino !== id.ino) {
      throw moved(this.vm, this.path, `does not hold the layer ${name} (${id.dev}:${id.ino}) that was checked${st === null ? '' : `; it holds ${st.dev}:${st.ino}`}`);
    }
    return st;
  }

  /** Creates `name` here: O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW beneath the fd (never over a file, never through a link), mode 0600. */
  create(name: string): number {
    const fd = openat2(this.fd, oneName(name), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW | C.O_NOCTTY);
    try { fchmodSync(fd, 0o600); } catch (err) { closeSync(fd); throw err; }
    return fd;
  }

  /**
   * The name of `name` in this directory for calls that take a path (the save file's creator):
   * the kernel resolves the magic link /proc/self/fd/N to the opened directory itself, not to
   * a name, so only `name` is looked up, and O_NOFOLLOW refuses it being a symlink.
   */
  via(name: string): string { return `/proc/self/fd/${this.fd}/${oneName(name)}`; }

  /** Removes `name` here (unlink never follows its last component; a missing one is fine). */
  unlink(name: string): void {
    try { unlinkSync(this.via(name)); } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  close(): void { closeSync(this.fd); }
}

/**
 * Removes `files`, each only from its directory as identified: by `dirs` (recorded when the
 * manager made files there), else by the file's own identity in `ids` (checked before the
 * unlink). Returns the files it refused to touch (no identity, or the directory or file is
 * another one now); a file that is already gone is fine.
 */
export function removeFiles(vm: string, files: readonly string[], dirs: Readonly<Record<string, FileId>> | undefined, ids?: ReadonlyMap<string, FileId>): string[] {
  const refused: string[] = [];
  for (const f of files) {
    const expect = dirs?.[dirname(f)];
    const id = ids?.get(f);
    if (expect === undefined && id === undefined) { refused.push(f); continue; }
    let dir: DiskDir;
    try { dir = DiskDir.open(vm, dirname(f), expect); } catch (err) {
      if ((err as { code?: string }).code === 'IMAGE_NOT_FOUND') continue; // the directory is gone: so is the file
      refused.push(f);
      continue;
    }
    try {
      const st = dir.stat(basename(f));
      if (st === null) continue;
      if (id !== undefined && (st.dev !== id.dev || st.ino !== id.ino)) { refused.push(f); continue; }
      if (!st.isFile()) { refused.push(f); continue; }
      dir.unlink(basename(f));
    } catch {
      refused.push(f);
    } finally {
      dir.close();
    }
  }
  return refused;
}

/** The identities of layers the VM's record claims (the one-writer rule's dev/ino by path). */
export function claimIds(claims: ReadonlyArray<{ path: string; dev: number; ino: number }> | undefined): Map<string, FileId> {
  return new Map((claims ?? []).map((c) => [c.path, { dev: c.dev, ino: c.ino }]));
}
