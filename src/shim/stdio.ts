/**
 * @module shim/stdio: the VM's serial console as the task's stdout. warden already logs the
 * console (serial.log, capped and rotated by the log writer); this copies what is appended
 * to the target containerd names: a `file://` URI (ctr --log-uri), or a FIFO, opened
 * read-write and non-blocking so a reader that went away (ctr run -d) never stalls anything.
 */
import { closeSync, constants, openSync, readSync, statSync, writeSync } from 'node:fs';
import { ShimError } from './errors.js';

const POLL_MS = 200;

export class ConsoleCopy {
  private offset = 0;
  private timer: NodeJS.Timeout | undefined;
  private fd: number | null;

  /** Told why the copy stopped early (a reader that closed for good, a full disk ...). */
  onError?: (err: unknown) => void;

  constructor(private readonly serialLog: string, target: string) {
    this.fd = openTarget(target);
    if (this.fd !== null) this.timer = setInterval(() => this.pump(), POLL_MS);
  }

  /** Copies what is new; output a full FIFO cannot take is retried on the next tick. */
  pump(): void {
    if (this.fd === null) return;
    let size = 0;
    try { size = statSync(this.serialLog).size; } catch { return; }
    if (size < this.offset) this.offset = 0; // rotated
    if (size === this.offset) return;
    const buf = Buffer.alloc(Math.min(size - this.offset, 1 << 20));
    let src: number;
    try { src = openSync(this.serialLog, 'r'); } catch { return; }
    try {
      const n = readSync(src, buf, 0, buf.length, this.offset);
      const w = writeSync(this.fd, buf, 0, n);
      this.offset += w;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return;
      this.onError?.(err);
      this.stop();
    } finally {
      closeSync(src);
    }
  }

  /** A last copy, then closes the target. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (this.fd === null) return;
    try { closeSync(this.fd); } catch { /* already closed */ }
    this.fd = null;
  }

  finish(): void {
    this.pump();
    this.stop();
  }
}

function openTarget(target: string): number | null {
  if (target === '') return null;
  try {
    if (target.startsWith('file://')) return openSync(decodeURI(new URL(target).pathname), constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o640);
    if (/^[a-z]+:\/\//.test(target)) {
      throw new ShimError('SHIM_UNSUPPORTED', `task stdout ${target}: only file:// URIs and FIFOs are supported`, { context: { target } });
    }
    return openSync(target, constants.O_RDWR | constants.O_NONBLOCK);
  } catch (cause) {
    if (cause instanceof ShimError) throw cause;
    throw new ShimError('SHIM_IO', `opening the task's stdout ${target} failed`, { context: { target }, cause });
  }
}
