/**
 * @module vm/logd: a VM's logs are written by its own log writer process (native/warden-logd),
 * never by QEMU: QEMU gets the write end of a pipe per log (serial console, its stderr), the
 * writer appends what arrives to the file and rotates it to FILE.1 at a cap, so a guest that
 * prints without end cannot fill the host's disk even while no warden command runs. The
 * writer exits by itself once every write end is closed (QEMU and its jail gone), so it
 * cannot outlive the VM; teardown only waits for it to flush.
 */
import { spawn } from 'node:child_process';
import { closeSync, constants as C, openSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';

/** QEMU's own stderr (qemu.log) is rotated at this size. */
export const QEMU_LOG_CAP = 2 * 1024 * 1024;

/**
 * The user the writer runs as when started by root: it needs nothing but the fds it is
 * given. Its own uid, just below the jailer's default lease range (200000-209999) and used
 * by nothing else, rather than nobody: no unrelated process (nor a non-root user's QEMU,
 * which runs as that user) may signal a writer, which could freeze its VM by stopping it.
 */
export const LOGD_USER = { uid: 199_999, gid: 199_999 };

/** The static writer built by scripts/setup.sh. */
export function logdPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'native', 'build', 'warden-logd');
}

interface Stream { name: string; read: number; write: number; log: number; rotated: number; cap: number }

/** Closes what the writer takes over (read end, log, rotated log) once, marking each closed: a number closed twice may be someone else's fd by then. */
function closeReadSide(s: Stream): void {
  for (const fd of [s.read, s.log, s.rotated]) {
    if (fd >= 0) { try { closeSync(fd); } catch { /* already closed */ } }
  }
  s.read = s.log = s.rotated = -1;
}

/** The pipes and log files of one start; `spawn()` hands the reading side to a new writer. */
export class LogPipes {
  private readonly streams: Stream[] = [];
  /** A line written to each log as it is opened, so that runs can be told apart in it (empty: none). */
  banner = '';

  /** Opens `path` (and path.1) and a pipe; returns the pipe's write end for QEMU. */
  add(name: string, path: string, cap: number, vm: string): number {
    const owned: number[] = [];
    try {
      const open = (p: string, flags: number): number => { const fd = openSync(p, flags, 0o600); owned.push(fd); return fd; };
      const log = open(path, C.O_RDWR | C.O_CREAT | C.O_APPEND);
      if (this.banner !== '') writeSync(log, this.banner);
      const rotated = open(`${path}.1`, C.O_RDWR | C.O_CREAT);
      const [read, write] = loadNative().pipe();
      this.streams.push({ name, read, write, log, rotated, cap });
      return write;
    } catch (cause) {
      for (const fd of owned) closeSync(fd);
      throw new VmError('VM_START_FAILED', `opening the log ${path} for VM ${vm} failed`, { context: { vm, path }, cause });
    }
  }

  /** The write end of a stream added before. */
  writeEnd(name: string): number {
    const s = this.streams.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no log stream ${name}`);
    return s.write;
  }

  /**
   * Starts the writer on every stream added so far and waits for it to report that it has
   * dropped its privileges; the reading side is then closed here (the writer holds it).
   * A writer that neither reports nor exits within `readyMs` is killed and the start fails:
   * the caller holds the VM's lock meanwhile. Returns the writer's pid.
   */
  async spawn(vm: string, user: { uid: number; gid: number } | null, path = logdPath(), readyMs = 10_000): Promise<number> {
    const writer = this.start(vm, user, path, readyMs);
    await writer.ready;
    return writer.pid!; // ready rejects when the spawn failed
  }

  /**
   * spawn() in two halves: the pid at once, and `ready`, which settles as spawn() does (the
   * failed writer killed, the reading sides closed here either way), so a caller can do other
   * work while the writer drops its privileges. What QEMU writes meanwhile waits in the pipe.
   */
  start(vm: string, user: { uid: number; gid: number } | null, path = logdPath(), readyMs = 10_000): { pid: number | undefined; ready: Promise<void> } {
    const streams = this.streams.filter((s) => s.read >= 0);
    const passed = streams.flatMap((s) => [s.read, s.log, s.rotated]);
    const args = [...(user === null ? [] : ['--user', `${user.uid}:${user.gid}`]),
      ...streams.map((s, i) => `${3 + 3 * i}:${4 + 3 * i}:${5 + 3 * i}:${s.cap}`)];
    // No environment: the manager's may hold secrets, and the writer reads none of it.
    const child = spawn(path, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe', ...passed], env: {} });
    const out = child.stdout!;
    const err = child.stderr!;
    let said = '';
    let reported = false;
    let timer: NodeJS.Timeout | undefined;
    out.on('data', (b: Buffer) => { said += b.toString('latin1'); });
    err.on('data', (b: Buffer) => { said += b.toString('utf8'); });
    const ready = (async (): Promise<void> => { try {
      await new Promise<void>((resolve, reject) => {
        const fail = (why: string, cause?: unknown): void => reject(new VmError('VM_START_FAILED',
          `the log writer of VM ${vm} did not start: ${why}`, { context: { vm, writer: path, args }, cause, suggestions: ['run "npm run setup" (it builds native/build/warden-logd)'] }));
        child.once('error', (cause) => fail(String(cause.message), cause));
        // 'close', not 'exit': it comes after stdout and stderr are drained, so the writer's last words are in `said`.
        child.once('close', (code, sig) => fail(`it exited (${sig ?? code})${said.trim() ? `: ${said.trim()}` : ''}`));
        out.once('data', () => { reported = true; resolve(); });
        timer = setTimeout(() => fail(`it did not report ready within ${readyMs} ms`), readyMs);
      });
    } finally {
      clearTimeout(timer);
      if (!reported && child.exitCode === null && child.signalCode === null) {
        // Waited for (bounded): a failed start must not return while the killed writer still holds the log files.
        const gone = new Promise<void>((r) => { child.once('exit', () => r()); setTimeout(r, 2000).unref(); });
        child.kill('SIGKILL');
        await gone;
      }
      out.destroy();
      err.destroy();
      child.removeAllListeners('close');
      child.unref();
      for (const s of streams) closeReadSide(s); // unless close() came first (a start that failed meanwhile)
    } })();
    return { pid: child.pid, ready };
  }

  /** Closes what this process still holds: write ends, and everything of streams never handed over. */
  close(): void {
    for (const s of this.streams.splice(0)) {
      if (s.write >= 0) { try { closeSync(s.write); } catch { /* already closed */ } }
      s.write = -1;
      closeReadSide(s);
    }
  }
}
