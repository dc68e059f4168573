/**
 * @module vm/fds: opening the plan's fds in the manager: files with exactly the planned
 * flags, listening unix sockets bound under a temporary name and renamed into place (Node
 * unlinks a socket's bound path when its server closes, so the final path must not be the
 * bound one), logs as pipes to the log writer. Every fd is closed again once the jailed
 * program holds its copy.
 */
import { closeSync, constants as C, fstatSync, openSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { openCheckedSync } from '../image/index.js';
import { VmError } from './errors.js';
import { LogPipes } from './logd.js';
import type { OpenFlag, PlannedFdView } from './ports.js';

/** The longest unix socket path bind(2) takes whole (sun_path is 108 bytes, NUL included). */
const SUN_PATH_MAX = 107;

/** Which file a path named when it was probed. */
export interface FileId { dev: number; ino: number }

const FLAG: Record<OpenFlag, number> = {
  O_RDONLY: C.O_RDONLY, O_WRONLY: C.O_WRONLY, O_RDWR: C.O_RDWR, O_DIRECT: C.O_DIRECT ?? 0,
  O_CREAT: C.O_CREAT, O_APPEND: C.O_APPEND, O_CLOEXEC: 0, // Node opens every fd close-on-exec already
};

/** A file the manager may create (state files): never through a symlink, never blocking, and it must turn out a regular file. */
function openCreated(path: string, flags: number): number {
  const n = openSync(path, flags | C.O_NOFOLLOW | C.O_NONBLOCK | C.O_NOCTTY, 0o600);
  if (fstatSync(n).isFile()) return n;
  closeSync(n);
  throw new VmError('VM_START_FAILED', `${path} is not a regular file`, { context: { path } });
}

export function openFlags(flags: readonly OpenFlag[]): number {
  return flags.reduce((acc, f) => acc | FLAG[f], 0);
}

/** The fds opened for one start; `close()` releases them all (idempotent). */
export class OpenFds {
  readonly byName = new Map<string, number>();
  readonly socketPaths: string[] = [];
  private readonly servers: Server[] = [];
  private readonly owned: number[] = [];
  /** Pipes to the log writer (planned 'log' fds, QEMU's stderr). */
  readonly logs = new LogPipes();

  /**
   * Opens every planned file and socket. `probed` maps each image file's path (layers, data
   * files, extents: image chainFiles) to the file the prober checked: the fd QEMU gets is
   * that file, reopened through the checked O_PATH fd (image openCheckedSync), so a file
   * swapped between probe and open, a FIFO or a device, is refused without being opened.
   */
  async openAll(fds: readonly PlannedFdView[], vm: string, probed: ReadonlyMap<string, FileId> = new Map()): Promise<void> {
    // The sockets listen at once (each waits for an event-loop turn); files and logs open meanwhile.
    const listening: Array<Promise<void>> = [];
    for (const fd of fds) {
      if (fd.kind === 'file') this.add(fd.name, this.openFile(fd, vm, probed.get(fd.path)));
      else if (fd.kind === 'unix-listen') listening.push(this.listen(fd.path, vm).then((n) => this.add(fd.name, n)));
      else if (fd.kind === 'log') this.add(fd.name, this.logs.add(fd.name, fd.path, fd.capBytes, vm));
    }
    const failed = (await Promise.allSettled(listening)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }

  /** fds the manager did not open itself (TAP queues from the network step), for the name map only. */
  adopt(name: string, fd: number): void {
    this.byName.set(name, fd);
    this.owned.push(fd);
  }

  private add(name: string, fd: number): void {
    this.byName.set(name, fd);
  }

  /**
   * Image files: checked (same inode as probed, a regular file or the block device probed)
   * before the one real open. Other files: regular files only, never through a symlink when
   * created, never blocking (O_NONBLOCK|O_NOCTTY).
   */
  private openFile(fd: Extract<PlannedFdView, { kind: 'file' }>, vm: string, want: FileId | undefined): number {
    try {
      const n = fd.flags.includes('O_CREAT') ? openCreated(fd.path, openFlags(fd.flags))
        : openCheckedSync(fd.path, { flags: openFlags(fd.flags), kinds: want === undefined ? ['file'] : ['file', 'block'], doing: `opening for VM ${vm}`, ...(want === undefined ? {} : { expect: want }) }).fd;
      this.owned.push(n);
      return n;
    } catch (cause) {
      // Another inode, or now a FIFO/device: refused by the checks before any open.
      const swapped = ['IMAGE_CHANGED', 'IMAGE_NOT_A_FILE'].includes((cause as { code?: string }).code ?? '');
      const message = swapped && want !== undefined
        ? `${fd.path} is not the file that was probed for VM ${vm} (probed ${want.dev}:${want.ino}); it was not opened`
        : `opening ${fd.path} (${fd.flags.join('|')}) for VM ${vm} failed${swapped ? '; it was not opened' : ''}`;
      throw new VmError('VM_START_FAILED', message, {
        context: { vm, path: fd.path, flags: fd.flags, from: fd.from, ...(want === undefined ? {} : { probed: want }) }, cause,
        ...(swapped ? { suggestions: ['something replaced the image while the VM was starting; start it again'] } : {}),
      });
    }
  }

  private async listen(path: string, vm: string): Promise<number> {
    const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${this.servers.length}`);
    // Longer names are cut short by bind(2) (sun_path holds 108 bytes with the NUL): the socket would land elsewhere.
    if (Buffer.byteLength(tmp) > SUN_PATH_MAX) {
      throw new VmError('VM_START_FAILED', `the socket path ${path} of VM ${vm} is too long for a unix socket (${Buffer.byteLength(tmp)} bytes while it is created as ${basename(tmp)}; the limit is ${SUN_PATH_MAX})`, {
        context: { vm, path, bytes: Buffer.byteLength(tmp), limit: SUN_PATH_MAX }, suggestions: ['use a shorter state root (--state-dir or $WARDEN_STATE_DIR) or VM name'],
      });
    }
    rmSync(tmp, { force: true });
    const server = createServer();
    this.servers.push(server);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ path: tmp, backlog: 8 }, () => resolve());
      });
      renameSync(tmp, path);
    } catch (cause) {
      throw new VmError('VM_START_FAILED', `creating the socket ${path} for VM ${vm} failed`, { context: { vm, path }, cause });
    }
    this.socketPaths.push(path);
    const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) throw new VmError('VM_START_FAILED', `the socket ${path} has no fd to pass`, { context: { vm, path } });
    return fd;
  }

  /** Closes the manager's copies (after launch, or on failure). Socket files stay unless `unlink`. */
  async close(unlink: boolean): Promise<void> {
    for (const fd of this.owned.splice(0)) {
      try { closeSync(fd); } catch { /* already closed */ }
    }
    this.logs.close();
    await Promise.all(this.servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (unlink) for (const p of this.socketPaths) rmSync(p, { force: true });
  }
}
