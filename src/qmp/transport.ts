/** @module qmp/transport: the one place that touches the socket: connecting, ordered writes, and SCM_RIGHTS sends through the native addon. */
import net from 'node:net';
import { loadNative } from '../sys/index.js';
import { QmpError } from './errors.js';

/** Where the monitor is: a unix socket path, a connected socket fd (e.g. a socketpair end), or a socket. */
export type QmpTarget = { path: string } | { fd: number } | { socket: net.Socket };

/** Opens the stream; resolves once connected. The caller owns the socket afterwards. */
export function openSocket(target: QmpTarget): Promise<net.Socket> {
  if ('socket' in target) return Promise.resolve(target.socket);
  if ('fd' in target) {
    try {
      return Promise.resolve(new net.Socket({ fd: target.fd, readable: true, writable: true }));
    } catch (cause) {
      return Promise.reject(new QmpError('QMP_CONNECT', `using fd ${target.fd} as the QMP socket failed`, { context: { fd: target.fd }, cause }));
    }
  }
  return new Promise((resolve, reject) => {
    const socket = net.connect({ path: target.path });
    const fail = (cause: Error) => {
      socket.destroy();
      reject(new QmpError('QMP_CONNECT', `connecting to the QMP socket ${target.path} failed`, {
        context: { path: target.path },
        cause,
        suggestions: ['check that QEMU is running with -mon chardev=...,mode=control on this path'],
      }));
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

/**
 * The socket's own file descriptor, for sendmsg. Node exposes it only on the internal
 * handle (`_handle.fd`); this is the single place that relies on that.
 */
function rawFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const EMPTY = Buffer.alloc(0);

type Outgoing = { data: Buffer; fds: number[]; wanted: () => boolean; resolve: () => void; reject: (e: Error) => void };

/**
 * Writes messages in order. Plain messages go through the Node socket. A message with
 * fds waits until Node has handed every earlier byte to the kernel, then goes out with
 * one sendmsg (fds on its first byte); later messages queue behind it, so the byte stream
 * QEMU sees is exactly the order of send() calls. A queued message whose `wanted()` turns
 * false (its call timed out) is never sent: after that the caller may close its fds, and a
 * closed fd number must not go out later, possibly reused for another file.
 */
export class Writer {
  private readonly queue: Outgoing[] = [];
  private pumping = false;

  constructor(private readonly socket: net.Socket) {}

  /**
   * Queues one message; resolves when its bytes (and fds) are in the kernel. A plain
   * message with nothing queued before it is written at once and returns undefined: no
   * promise for the common case.
   */
  send(data: Buffer | string, fds: readonly number[] = [], wanted: () => boolean = () => true): Promise<void> | undefined {
    if (fds.length === 0 && this.queue.length === 0) {
      this.write(data);
      return undefined;
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ data: typeof data === 'string' ? Buffer.from(data) : data, fds: [...fds], wanted, resolve, reject });
      void this.pump();
    });
  }

  /** Fails every queued message (the connection is gone). */
  abort(error: Error): void {
    for (const item of this.queue.splice(0)) item.reject(error);
  }

  /** Nothing queued: a plain message may go out at once through write(). */
  get idle(): boolean {
    return this.queue.length === 0;
  }

  /**
   * Writes at once; for a plain message only when `idle`, or the order of messages would
   * break. No callback per write: a plain command costs what a raw socket write costs (see drained()).
   */
  write(data: Buffer | string): void {
    this.socket.write(data);
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0) {
        const item = this.queue[0]!;
        try {
          if (!item.wanted()) { /* dropped: its call already settled */ }
          else if (item.fds.length === 0) this.write(item.data);
          else await this.sendWithFds(item);
          this.queue.shift();
          item.resolve();
        } catch (err) {
          this.queue.shift();
          item.reject(err as Error);
        }
      }
    } finally {
      this.pumping = false;
    }
  }

  private async sendWithFds({ data, fds, wanted }: Outgoing): Promise<void> {
    await this.drained();
    if (!wanted()) return;
    if (this.socket.destroyed) throw new QmpError('QMP_DISCONNECTED', 'passing fds over QMP failed: the connection is closed');
    const sock = rawFd(this.socket);
    if (sock === undefined) {
      throw new QmpError('QMP_FD_PASSING', 'passing fds over QMP failed: this socket has no raw file descriptor', {
        suggestions: ['connect by path or by fd to a unix socket'],
      });
    }
    const sent = await sendmsgRetrying(this.socket, sock, data, fds, wanted);
    if (sent !== undefined && sent < data.length) this.write(data.subarray(sent));
  }

  /**
   * Resolves once every byte written through Node has reached the kernel: a stream runs
   * its writes in order, so the callback of an empty write comes after all earlier ones.
   */
  private drained(): Promise<void> {
    if (this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => { this.socket.write(EMPTY, () => resolve()); });
  }
}

/**
 * sendmsg on a non-blocking socket: retries EAGAIN (QEMU not reading yet) with a short
 * pause. Returns the bytes sent, or undefined when the message was dropped unsent.
 */
async function sendmsgRetrying(socket: net.Socket, sock: number, data: Buffer, fds: number[], wanted: () => boolean): Promise<number | undefined> {
  const native = loadNative();
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (socket.destroyed) throw new QmpError('QMP_DISCONNECTED', 'passing fds over QMP failed: the connection closed');
    // EAGAIN sent nothing, so a call that timed out meanwhile can still be dropped whole.
    if (!wanted()) return undefined;
    try {
      return native.sendFds(sock, data, fds);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === 'EPIPE' || code === 'ECONNRESET' || code === 'ENOTCONN') {
        throw new QmpError('QMP_DISCONNECTED', 'passing fds over QMP failed: QEMU closed the connection', { cause });
      }
      if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') {
        throw new QmpError('QMP_FD_PASSING', `passing ${fds.length} fd(s) over QMP failed: sendmsg returned ${String(code)}`, {
          context: { fds },
          cause,
        });
      }
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}
