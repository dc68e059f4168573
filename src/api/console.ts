/**
 * @module api/console: the serial console over a WebSocket. A caller who may use the VM's
 * console gets a one-shot ticket (32 random bytes, 30 s, bound to the VM and the caller's
 * uid) and opens `/v1/vms/{name}/console/ws?ticket=` on the same socket. The client gets
 * the tail of serial.log first, then the live bytes; what it sends goes to the guest.
 * QEMU serves one client per serial socket, so there is one attached client per VM (the
 * console lock, which `warden console` also takes); `force` takes the console over.
 * While the client cannot keep up, the serial socket is not read: bytes wait, none are dropped.
 */
import { randomBytes } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, Server } from 'node:http';
import { createConnection, type Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { NodeFs } from '../sys/index.js';
import { StateStore, type VmService } from '../vm/index.js';
import { callerOf, type Caller } from './auth.js';
import { errorResponse } from './errors.js';

export const TICKET_TTL_MS = 30_000;
/** Bytes of serial.log sent before the live stream. */
export const BACKLOG_BYTES = 64 * 1024;
const HIGH_WATER = 1 << 20;

interface Ticket { vm: string; uid: number; force: boolean; expires: number }
interface Attached { ws: WebSocket; sock: Socket; release: () => Promise<void> }

export class ConsoleHub {
  private readonly tickets = new Map<string, Ticket>();
  private readonly attached = new Map<string, Attached>();
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  private readonly store: StateStore;

  constructor(private readonly service: VmService) {
    this.store = new StateStore(service.stateRoot, new NodeFs());
  }

  issue(vm: string, uid: number, force: boolean): { ticket: string; path: string; expiresAt: string } {
    const now = Date.now();
    for (const [k, t] of this.tickets) if (t.expires < now) this.tickets.delete(k);
    const ticket = randomBytes(32).toString('hex');
    this.tickets.set(ticket, { vm, uid, force, expires: now + TICKET_TTL_MS });
    return { ticket, path: `/v1/vms/${vm}/console/ws?ticket=${ticket}`, expiresAt: new Date(now + TICKET_TTL_MS).toISOString() };
  }

  /** Serves console upgrades on `server` (other upgrade requests are refused). */
  listen(server: Server): void {
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.upgrade(req, socket, head).catch((err: unknown) => refuse(socket, err));
    });
  }

  async closeAll(): Promise<void> {
    for (const a of this.attached.values()) a.ws.close(1001, 'the daemon is stopping');
    this.wss.close();
  }

  /** One console upgrade; `who` is the caller when the listener identified it (HTTPS), else the unix socket's peer. */
  async upgrade(req: IncomingMessage, socket: Socket, head: Buffer, who?: Caller): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://warden');
    const m = /^\/v1\/vms\/([^/]+)\/console\/ws$/.exec(url.pathname);
    const key = url.searchParams.get('ticket') ?? '';
    const t = this.tickets.get(key);
    this.tickets.delete(key); // one-shot, also when refused
    const caller = who ?? callerOf(socket);
    // On the unix socket a browser page has no business (the HTTPS listener checks its own same-origin rule).
    const origin = req.headers.origin;
    if (who === undefined && origin !== undefined && !allowedOrigins().includes(origin)) {
      return refuse(socket, null, 403, 'AUTH_FORBIDDEN', `console upgrades from origin ${origin} are refused (allowed: $WARDEN_CONSOLE_ORIGINS, now ${allowedOrigins().join(', ') || 'none'})`);
    }
    if (m === null || t === undefined || t.expires < Date.now() || t.vm !== decodeURIComponent(m[1]!) || t.uid !== caller.uid) {
      return refuse(socket, null, 403, 'AUTH_FORBIDDEN', 'no valid console ticket for this VM and caller (POST /v1/vms/NAME/console gives one, valid 30 s, once)');
    }
    const rec = await this.service.get(t.vm);
    if (rec.phase !== 'running' && rec.phase !== 'paused') return refuse(socket, null, 409, 'VM_INVALID_STATE', `VM ${t.vm} is ${rec.phase}: no console`);
    const prev = this.attached.get(t.vm);
    if (prev !== undefined) {
      if (!t.force) return refuse(socket, null, 409, 'VM_BUSY', `the console of VM ${t.vm} is attached elsewhere; ask for a ticket with force=1 to take it over`);
      prev.ws.close(4000, 'taken over by another client');
      await prev.release();
    }
    const lock = await this.store.lockConsole(t.vm);
    const backlog = await tail(this.store.paths(t.vm).serialLog, BACKLOG_BYTES);
    const sock = createConnection(this.store.paths(t.vm).serialSocket);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.pump(t.vm, ws, sock, backlog, () => lock.release()));
  }

  private pump(vm: string, ws: WebSocket, sock: Socket, backlog: Buffer, unlock: () => Promise<void>): void {
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      clearInterval(drain);
      sock.destroy();
      if (this.attached.get(vm)?.ws === ws) this.attached.delete(vm);
      await unlock().catch(() => undefined);
    };
    this.attached.set(vm, { ws, sock, release });
    if (backlog.length > 0) ws.send(backlog);
    sock.on('data', (b: Buffer) => {
      ws.send(b);
      if (ws.bufferedAmount > HIGH_WATER) sock.pause();
    });
    const drain = setInterval(() => { if (sock.isPaused() && ws.bufferedAmount < HIGH_WATER / 2) sock.resume(); }, 50);
    sock.on('close', () => { ws.close(1000, 'the console closed'); void release(); });
    sock.on('error', () => undefined);
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => { sock.write(Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)); });
    ws.on('close', () => { void release(); });
    ws.on('error', () => { void release(); });
  }
}

/**
 * Origins a browser may open the console from ($WARDEN_CONSOLE_ORIGINS, comma-separated).
 * None by default: there is no web UI yet, and a page on another site must never ride a
 * ticket (programs send no Origin and are not affected).
 */
function allowedOrigins(): string[] {
  return (process.env['WARDEN_CONSOLE_ORIGINS'] ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
}

async function tail(path: string, max: number): Promise<Buffer> {
  try {
    const size = (await stat(path)).size;
    const fh = await open(path, 'r');
    try {
      const n = Math.min(size, max);
      const buf = Buffer.alloc(n);
      await fh.read(buf, 0, n, size - n);
      return buf;
    } finally {
      await fh.close();
    }
  } catch {
    return Buffer.alloc(0);
  }
}

function refuse(socket: Socket, err: unknown, status?: number, code?: string, message?: string): void {
  const body = err === null ? { error: { code, message, details: {} } } : errorResponse(err).body;
  const s = status ?? errorResponse(err).status;
  const text = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${s} Refused\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
}
