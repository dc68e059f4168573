/**
 * @module vm/migrate-link: the migration stream's socket, made by the managers: the target
 * listens (TCP on an address it returns), the source connects, and before either passes its
 * end to QEMU the source proves it is the one the target expects (a one-time token, answered
 * with one byte). Nothing else is read or written, so QEMU gets the stream from its first byte.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, createServer, isIPv4, type AddressInfo, type Socket } from 'node:net';
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

/** Whether `host` is this host's loopback (127/8, ::1, ::ffff:127/104, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIPv4(v4) && v4.startsWith('127.');
}

/**
 * The stream is plaintext TCP (QEMU's migration format, disk bytes for NBD): off loopback only
 * when the request says the link is trusted (`insecure`); there is no TLS on it yet.
 */
export function refuseInsecureListen(host: string, insecure: boolean): void {
  if (insecure || isLoopback(host)) return;
  throw new VmError('VM_MIGRATE_REFUSED', `refusing to receive a migration on ${host}: the stream (guest RAM, device state, copied disks) is not encrypted, and ${host} is not a loopback address`, {
    context: { field: 'listen.host', host },
    suggestions: ['on a trusted link only: warden migrate --insecure-network (API: insecureNetwork: true; incoming: listen.insecure: true)', 'or migrate over loopback (the default, 127.0.0.1)'],
  });
}

/** How long a peer has to send the token, and how many such peers may wait at once; later ones are closed at once. */
export interface GateLimits { authMs: number; maxPending: number }
export const GATE_LIMITS: GateLimits = { authMs: 5_000, maxPending: 4 };

/**
 * The connection handler of a token-checked listener, attached when it listens: a peer that
 * does not send the token within `authMs`, sends a wrong one, or finds `maxPending` peers
 * already waiting is closed; one that proves itself goes to `admit` (handle stopped, nothing
 * read past the token). `sockets` holds every connection not yet admitted, for the closer.
 */
export function tokenGate(token: Buffer, limits: GateLimits, admit: (s: Socket) => void): { onConnection(s: Socket): void; destroyPending(): void } {
  const pending = new Set<Socket>();
  return {
    onConnection(s: Socket): void {
      s.on('error', () => undefined); // a reset peer is only a closed connection
      if (pending.size >= limits.maxPending) { s.destroy(); return; }
      pending.add(s);
      readExactly(s, TOKEN_BYTES, limits.authMs).then((got) => {
        pending.delete(s);
        if (!timingSafeEqual(got, token)) throw new Error('wrong token');
        admit(s);
      }).catch(() => { pending.delete(s); s.destroy(); });
    },
    destroyPending(): void { for (const s of pending) s.destroy(); pending.clear(); },
  };
}

/**
 * Listens on `host` (port chosen by the kernel), its gate attached at once: the first peer
 * that sends the token is acknowledged and kept for `accept`, which returns it for QEMU; any
 * other peer is closed. The listener closes after that, on `close`, or at `timeoutMs`.
 */
export async function listenForMigration(host: string, timeoutMs: number, limits: GateLimits = GATE_LIMITS): Promise<{ address: MigrationAddress; accept(): Promise<LinkEnd>; close(): void }> {
  const token = randomBytes(TOKEN_BYTES);
  let admitted: Socket | null = null;
  let taken = false;
  let settle!: { resolve(s: Socket): void; reject(e: Error): void };
  const first = new Promise<Socket>((resolve, reject) => { settle = { resolve, reject }; });
  first.catch(() => undefined); // nobody may be waiting yet; accept reports it
  const gate = tokenGate(token, limits, (s) => {
    if (admitted !== null) { s.destroy(); return; }
    admitted = s;
    s.write(ACK);
    clearTimeout(timer);
    server.close();
    gate.destroyPending();
    settle.resolve(s);
  });
  const server = createServer({ pauseOnConnect: true }, (s) => {
    if (admitted !== null) s.destroy(); else gate.onConnection(s);
  });
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen({ host, port: 0 }, () => res()); });
  const missed = (): VmError => new VmError('VM_MIGRATE_FAILED', `no source connected to ${host} within ${timeoutMs} ms`, { context: { host } });
  const close = (): void => {
    clearTimeout(timer);
    server.close();
    gate.destroyPending();
    if (admitted === null) settle.reject(missed());
    else if (!taken) admitted.destroy();
  };
  const timer = setTimeout(close, timeoutMs);
  const accept = async (): Promise<LinkEnd> => {
    const s = await first;
    taken = true;
    return { fd: fdOf(s), close: () => s.destroy() };
  };
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
