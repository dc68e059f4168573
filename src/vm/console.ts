/**
 * @module vm/console: attaching a terminal to a VM's serial console (its unix socket) and
 * following its serial log. The detach key is Ctrl-] (as in virsh and telnet); the VM keeps
 * running after a detach.
 */
import { createConnection } from 'node:net';
import { open, stat } from 'node:fs/promises';
import { VmError } from './errors.js';

/** Ctrl-]: detaches from the console. */
export const DETACH_BYTE = 0x1d;
export const DETACH_KEY_NAME = 'Ctrl-]';

export interface ConsoleIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
}

/** Attaches until the detach key, the end of input, or the VM closing the console. Resolves with why it ended. */
export function attachConsole(vm: string, socketPath: string, io: ConsoleIo): Promise<'detached' | 'input-ended' | 'closed'> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path: socketPath });
    const raw = io.input.isTTY === true && typeof io.input.setRawMode === 'function';
    let ended: 'detached' | 'input-ended' | 'closed' | undefined;
    let connected = false;
    /** Gives the terminal back as it was (raw mode off, our listeners gone), whichever way the console ended. */
    const release = (): void => {
      io.input.removeListener('data', onInput);
      io.input.removeListener('end', onEnd);
      if (raw && connected) io.input.setRawMode!(false);
      io.input.pause();
      sock.end();
      sock.destroy();
    };
    const finish = (why: 'detached' | 'input-ended' | 'closed'): void => {
      if (ended !== undefined) return;
      ended = why;
      release();
      resolve(why);
    };
    const onInput = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const i = b.indexOf(DETACH_BYTE);
      if (i >= 0) {
        if (i > 0) sock.write(b.subarray(0, i));
        finish('detached');
        return;
      }
      sock.write(b);
    };
    const onEnd = (): void => finish('input-ended');
    sock.once('connect', () => {
      connected = true;
      if (raw) io.input.setRawMode!(true);
      io.input.on('data', onInput);
      io.input.on('end', onEnd);
      io.input.resume();
    });
    sock.on('data', (b: Buffer) => io.output.write(b));
    sock.on('close', () => finish('closed'));
    sock.on('error', (cause) => {
      if (ended !== undefined) return;
      ended = 'closed';
      release(); // an error after the connect (a reset) must not leave the terminal raw
      reject(new VmError('VM_IO', `attaching to the console of VM ${vm} failed`, { context: { vm, socket: socketPath }, cause }));
    });
  });
}

/** Prints the serial log from `offset`; with `follow`, keeps printing what is appended until `until()` says stop. */
export async function followLog(path: string, out: NodeJS.WritableStream, o: { follow: boolean; until?: () => Promise<boolean>; offset?: number }): Promise<number> {
  let offset = o.offset ?? 0;
  const buf = Buffer.alloc(64 * 1024);
  for (;;) {
    const size = await stat(path).then((s) => s.size, () => 0);
    if (size < offset) offset = 0; // the log was capped (rotated and truncated) meanwhile
    if (size > offset) {
      const fh = await open(path, 'r');
      try {
        while (offset < size) {
          const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - offset), offset);
          if (bytesRead === 0) break;
          out.write(Buffer.from(buf.subarray(0, bytesRead)));
          offset += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
    if (!o.follow || (o.until !== undefined && (await o.until()))) return offset;
    await new Promise((r) => setTimeout(r, 200));
  }
}
