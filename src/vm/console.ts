/**
 * @module vm/console: attaching a terminal to a VM's serial console (its unix socket) and
 * following its serial log. The detach key is Ctrl-] (as in virsh and telnet); the VM keeps
 * running after a detach.
 */
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { open, stat } from 'node:fs/promises';
import { VmError, isVmError } from './errors.js';
import type { StateStore } from './store.js';

import { DETACH_BYTE, DETACH_KEY_NAME } from './detach-key.js';

export { DETACH_BYTE, DETACH_KEY_NAME };

export interface ConsoleIo {
  input: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  output: NodeJS.WritableStream;
}

/**
 * Attaches until the detach key, the end of input, or the VM closing the console. Resolves
 * with why it ended. The console is the serial socket's path, or a stream already connected
 * to it (the daemon's console WebSocket as a stream).
 */
export function attachConsole(vm: string, socketPath: string | Duplex, io: ConsoleIo): Promise<'detached' | 'input-ended' | 'closed'> {
  return new Promise((resolve, reject) => {
    const given = typeof socketPath !== 'string';
    const sock = given ? socketPath : createConnection({ path: socketPath });
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
    const onConnect = (): void => {
      connected = true;
      if (raw) io.input.setRawMode!(true);
      io.input.on('data', onInput);
      io.input.on('end', onEnd);
      io.input.resume();
    };
    if (given) queueMicrotask(onConnect); else sock.once('connect', onConnect);
    sock.on('data', (b: Buffer) => io.output.write(b));
    sock.on('close', () => finish('closed'));
    sock.on('error', (cause) => {
      if (ended !== undefined) return;
      ended = 'closed';
      release(); // an error after the connect (a reset) must not leave the terminal raw
      reject(new VmError('VM_IO', `attaching to the console of VM ${vm} failed`, { context: { vm, ...(given ? {} : { socket: socketPath }) }, cause }));
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

export type ConsoleEnd = 'detached' | 'input-ended' | 'closed';

/** Attaches to VM `name`'s serial socket under the console lock (QEMU serves one client); VM_BUSY names the holder otherwise. */
export async function attachLocked(store: StateStore, name: string, io: ConsoleIo): Promise<ConsoleEnd> {
  const lock = await store.lockConsole(name).catch((err: unknown) => {
    if (!isVmError(err, 'VM_BUSY')) throw err;
    const holder = (err.context['holder'] as { pid?: number } | undefined)?.pid;
    throw new VmError('VM_BUSY', `the console of VM ${name} is already attached (process ${holder ?? '?'}): QEMU serves one console client at a time`, {
      context: err.context, suggestions: [`detach it there (${DETACH_KEY_NAME})`, `or watch the output without typing: warden logs -f ${name}`] });
  });
  try {
    return await attachConsole(name, store.paths(name).serialSocket, io);
  } finally {
    await lock.release();
  }
}

/** Writes the serial log, its rotated older part first; with `follow`, keeps writing until `stopped()`. Returns the bytes written. */
export async function printSerialLog(store: StateStore, name: string, out: NodeJS.WritableStream, o: { follow: boolean; stopped: () => Promise<boolean> }): Promise<number> {
  const log = store.paths(name).serialLog;
  const older = await followLog(`${log}.1`, out, { follow: false });
  return older + (await followLog(log, out, { follow: o.follow, until: o.stopped }));
}
