/**
 * @module vm/migrate-link: the migration stream's socket, made by the managers: the target
 * listens (TCP on an address it returns), the source connects, and before either passes its
 * end to QEMU the source proves it is the one the target expects (a one-time token, answered
 * with one byte). Nothing else is read or written, so QEMU gets the stream from its first byte.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { VmError } from './errors.js';

export const TOKEN_BYTES = 32;
export const ACK = Buffer.from([0x06]);

/** Where the source connects: a TCP address, with the token it must send first. */
export interface MigrationAddress {
  host: string;
  port: number;
  token: string;
}

/** One end of the stream, ready for QEMU: `fd` goes over QMP (getfd); `close` drops the manager's copy after. */
export interface LinkEnd {
  fd: number;
  close(): void;
}

function fdOf(s: Socket): number {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new VmError('VM_MIGRATE_FAILED', 'the migration socket has no file descriptor', {});
  return fd;
}

type Handle = { reading?: boolean; readStop?: () => number; readStart?: () => number };

/**
 * Stops the handle reading: a paused Node stream still reads ahead into its buffer, and what it
 * took would be lost to QEMU. `reading` stays true, so the stream does not start it again by
 * itself (it would, to fill its buffer); only `startReading` does.
 */
export function stopReading(s: Socket): void {
  s.pause();
  const h = (s as unknown as { _handle?: Handle })._handle;
  if (h?.readStop !== undefined) { h.readStop(); h.reading = true; stopped.add(s); }
}

const stopped = new WeakSet<Socket>();

/**
 * Undoes stopReading. The handle is started here: the stream still counts the read it asked
 * for before the stop as pending, so it would not ask again.
 */
export function startReading(s: Socket): void {
  const h = (s as unknown as { _handle?: Handle })._handle;
  if (stopped.delete(s)) h?.readStart?.();
  s.resume();
}

/** Reads exactly `n` bytes, then stops reading so the rest stays in the kernel for QEMU. */
export function readExactly(s: Socket, n: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`nothing within ${timeoutMs} ms`)), timeoutMs);
    const onData = (b: Buffer): void => {
      got = Buffer.concat([got, b]);
      if (got.length >= n) done(null);
    };
    const onEnd = (): void => done(new Error('the peer closed the connection'));
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      stopReading(s);
      s.off('data', onData).off('end', onEnd).off('error', done);
      if (err !== null) reject(err);
      else if (got.length !== n) reject(new Error(`the peer sent ${got.length} bytes where ${n} were expected`));
      else resolve(got);
    };
    s.on('data', onData).once('end', onEnd).once('error', done);
    startReading(s);
  });
}

/**
 * Listens on `host` (port chosen by the kernel). `accept` waits for the first connection that
 * sends the token, acknowledges it and returns it for QEMU; others are dropped. The listener
 * closes after that, on `close`, or at `timeoutMs`.
 */
export async function listenForMigration(host: string, timeoutMs: number): Promise<{ address: MigrationAddress; accept(): Promise<LinkEnd>; close(): void }> {
  const token = randomBytes(TOKEN_BYTES);
  const server = createServer({ pauseOnConnect: true });
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen({ host, port: 0 }, () => res()); });
  const close = (): void => { server.close(); };
  const timer = setTimeout(close, timeoutMs);
  const accept = (): Promise<LinkEnd> => new Promise((resolve, reject) => {
    if (!server.listening) { reject(new VmError('VM_MIGRATE_FAILED', `no source connected to ${host} within ${timeoutMs} ms`, { context: { host } })); return; }
    server.once('close', () => reject(new VmError('VM_MIGRATE_FAILED', `no source connected to ${host} within ${timeoutMs} ms`, { context: { host } })));
    server.on('connection', (s: Socket) => {
      readExactly(s, TOKEN_BYTES, 10_000).then((got) => {
        if (!timingSafeEqual(got, token)) throw new Error('wrong token');
        s.write(ACK);
        clearTimeout(timer);
        server.close();
        resolve({ fd: fdOf(s), close: () => s.destroy() });
      }).catch(() => s.destroy());
    });
  });
  const port = (server.address() as AddressInfo).port;
  return { address: { host, port, token: token.toString('hex') }, accept, close };
}

/**
 * Connects to the target, sends the token and waits for its byte: the socket is then QEMU's.
 * `go`: one more byte once paused, for a peer that speaks first (an NBD server): it starts only then.
 */
export async function connectForMigration(a: MigrationAddress, timeoutMs = 10_000, o: { go?: boolean } = {}): Promise<LinkEnd> {
  const s = connect({ host: a.host, port: a.port });
  s.pause();
  try {
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      s.once('connect', () => { clearTimeout(timer); res(); }).once('error', (e) => { clearTimeout(timer); rej(e); });
    });
    s.write(Buffer.from(a.token, 'hex'));
    await readExactly(s, ACK.length, timeoutMs);
    if (o.go === true) s.write(ACK);
    return { fd: fdOf(s), close: () => s.destroy() };
  } catch (cause) {
    s.destroy();
    throw new VmError('VM_MIGRATE_FAILED', `connecting to the migration target ${a.host}:${a.port} failed`, { context: { host: a.host, port: a.port }, cause });
  }
}
