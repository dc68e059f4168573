/**
 * @module vm/display: a VNC client for a running QEMU without any listening socket: a
 * socketpair per client, one end handed to QEMU with QMP `getfd` + `add_client`, the
 * other end pumped to whatever carries the client (a browser's WebSocket).
 */
import net from 'node:net';
import { loadNative } from '../sys/index.js';
import { VmError } from './errors.js';

/** The one QMP call the hand-off needs (a QmpClient fits; the daemon passes its session's). */
export interface DisplayQmp {
  execute(name: 'query-vnc-servers'): Promise<unknown>;
  execute(name: 'getfd', args: { fdname: string }, options: { fds: readonly number[] }): Promise<unknown>;
  execute(name: 'closefd', args: { fdname: string }): Promise<unknown>;
  execute(name: 'add_client', args: { protocol: string; fdname: string; skipauth?: boolean }): Promise<unknown>;
}

/** A message-oriented carrier of the RFB byte stream (the `ws` WebSocket fits). */
export interface DisplayPeer {
  send(data: Buffer, cb?: (err?: Error) => void): void;
  close(code?: number, reason?: string): void;
  readonly bufferedAmount: number;
  on(event: 'message', fn: (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => void): unknown;
  on(event: 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
}

let counter = 0;

/**
 * Makes a socketpair, gives one end to QEMU as a VNC client and returns the other as a
 * socket. QEMU's end is closed here once `getfd` has carried it (QEMU holds its own dup);
 * a failed `add_client` takes the named fd back with `closefd`, so nothing is left in QEMU.
 */
export async function openDisplayClient(vm: string, qmp: DisplayQmp): Promise<net.Socket> {
  const native = loadNative();
  const [ours, theirs] = native.socketpair();
  const fdname = `warden-vnc-${process.pid}-${++counter}`;
  let handed = false;
  try {
    // add_client with no VNC display in QEMU succeeds and silently drops the fd: ask first.
    const servers = (await qmp.execute('query-vnc-servers')) as unknown[];
    if (servers.length === 0) throw new Error('QEMU has no VNC display (started without -vnc)');
    await qmp.execute('getfd', { fdname }, { fds: [theirs] });
    handed = true;
    await qmp.execute('add_client', { protocol: 'vnc', fdname, skipauth: true });
  } catch (cause) {
    if (handed) await qmp.execute('closefd', { fdname }).catch(() => undefined);
    native.closeFd(ours);
    throw new VmError('VM_NO_DISPLAY', `handing a display client to VM ${vm} failed`, {
      context: { vm, fdname }, cause, suggestions: ['the VM needs `vnc: true` in its spec and must be running'],
    });
  } finally {
    native.closeFd(theirs);
  }
  return new net.Socket({ fd: ours, readable: true, writable: true });
}

/** Above this many bytes queued toward the browser, stop reading from QEMU until it drains. */
const HIGH_WATER = 1 << 20;

/**
 * Pumps bytes both ways between QEMU's VNC socket and the peer until either side closes;
 * resolves then, with both closed. Backpressure: QEMU's side is paused while the peer's
 * queue is above HIGH_WATER, so a slow browser slows the display, never the daemon.
 */
export function pumpDisplay(sock: net.Socket, peer: DisplayPeer): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      sock.destroy();
      try { peer.close(1000, 'display closed'); } catch { /* already closed */ }
      resolve();
    };
    const drained = (): void => {
      if (!done && sock.isPaused() && peer.bufferedAmount < HIGH_WATER) sock.resume();
    };
    sock.on('data', (b: Buffer) => {
      peer.send(b, () => drained());
      if (peer.bufferedAmount >= HIGH_WATER) sock.pause();
    });
    peer.on('message', (data) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (!done) sock.write(buf);
    });
    sock.on('close', finish);
    sock.on('error', finish);
    peer.on('close', finish);
    peer.on('error', finish);
  });
}
