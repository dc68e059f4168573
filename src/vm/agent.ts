/**
 * @module vm/agent: the QEMU guest agent, reached on the socket the manager planned for it
 * (QEMU listens there with the fd the manager bound): the guest's OS and addresses for
 * inspect, and guest-shutdown for stop. Everything the agent says comes from the guest, so
 * replies are bounded in size and time, checked field by field, and stripped of control
 * characters before anyone prints them.
 */
import { connect, type Socket } from 'node:net';
import type { GuestAddress } from './endpoints.js';

/** The most bytes one reply may take; more is a misbehaving guest. */
const MAX_REPLY = 256 * 1024;

export interface GuestOs { name: string; version: string; kernel: string; machine: string }
export interface GuestNic { name: string; mac: string | null; addresses: GuestAddress[] }
export interface GuestInfo { os: GuestOs | null; nics: GuestNic[] }

/** One agent session: sync first (a previous client may have left a reply in the channel), then commands. */
class AgentSession {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private failed: Error | null = null;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      if (this.buf.length > MAX_REPLY) this.fail(new Error(`the guest agent sent more than ${MAX_REPLY} bytes`));
      this.wake?.();
    });
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('the guest agent channel closed')));
  }

  static async open(path: string, deadline: number): Promise<AgentSession> {
    const sock = connect(path);
    await withDeadline(new Promise<void>((res, rej) => { sock.once('connect', res); sock.once('error', rej); }), deadline, sock);
    const s = new AgentSession(sock);
    try {
      await s.sync(deadline);
      return s;
    } catch (err) {
      s.close();
      throw err;
    }
  }

  /** 0xFF resets the agent's parser; guest-sync-delimited prefixes its reply with 0xFF, so stale bytes before it are dropped. */
  private async sync(deadline: number): Promise<void> {
    const id = Math.floor(Math.random() * 2 ** 31);
    this.sock.write(Buffer.from([0xff]));
    this.sock.write(`${JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } })}\n`);
    for (;;) {
      const ff = await this.until(deadline, () => { const i = this.buf.indexOf(0xff); return i < 0 ? null : i; });
      this.buf = this.buf.subarray(ff + 1);
      if ((await this.reply(deadline).catch(() => undefined)) === id) return;
    }
  }

  private fail(e: Error): void {
    this.failed ??= e;
    this.wake?.();
  }

  private async until<T>(deadline: number, probe: () => T | null): Promise<T> {
    for (;;) {
      const v = probe();
      if (v !== null) return v;
      if (this.failed) throw this.failed;
      await withDeadline(new Promise<void>((r) => { this.wake = r; }), deadline, this.sock);
    }
  }

  /** The next reply line's `return`; an `error` reply throws with the agent's description. */
  async reply(deadline: number): Promise<unknown> {
    const line = await this.until(deadline, () => { const i = this.buf.indexOf(0x0a); return i < 0 ? null : i; });
    const text = this.buf.subarray(0, line).toString('utf8').trim();
    this.buf = this.buf.subarray(line + 1);
    if (text === '') return this.reply(deadline);
    let msg: { return?: unknown; error?: { desc?: unknown } };
    try { msg = JSON.parse(text) as typeof msg; } catch { throw new Error('the guest agent sent a line that is not JSON'); }
    if (msg.error !== undefined) throw new Error(`the guest agent refused: ${clean(msg.error.desc)}`);
    return msg.return;
  }

  async execute(command: string, deadline: number, args?: Record<string, unknown>): Promise<unknown> {
    this.sock.write(`${JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args })}\n`);
    return this.reply(deadline);
  }

  /** Sends a command that gets no reply when it works (guest-shutdown). */
  send(command: string, args: Record<string, unknown>): void {
    this.sock.write(`${JSON.stringify({ execute: command, arguments: args })}\n`);
  }

  close(): void {
    this.sock.destroy();
  }
}

async function withDeadline<T>(p: Promise<T>, deadline: number, sock: Socket): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => { sock.destroy(); rej(new Error('the guest agent did not answer in time')); }, Math.max(0, deadline - Date.now()));
  });
  try { return await Promise.race([p, timeout]); } finally { clearTimeout(timer); }
}

/** A guest string fit to print: no control characters, at most 200 characters. */
function clean(v: unknown): string {
  return typeof v === 'string' ? v.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 200) : '';
}

function osOf(v: unknown): GuestOs | null {
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  return { name: clean(o['pretty-name'] ?? o['name']), version: clean(o['version']), kernel: clean(o['kernel-release']), machine: clean(o['machine']) };
}

function nicsOf(v: unknown): GuestNic[] {
  if (!Array.isArray(v)) return [];
  return v.slice(0, 64).flatMap((n): GuestNic[] => {
    if (typeof n !== 'object' || n === null) return [];
    const r = n as Record<string, unknown>;
    const addrs = Array.isArray(r['ip-addresses']) ? r['ip-addresses'].slice(0, 16) : [];
    const addresses = addrs.flatMap((a): GuestAddress[] => {
      const x = a as Record<string, unknown>;
      const family = x['ip-address-type'];
      const address = clean(x['ip-address']);
      if ((family !== 'ipv4' && family !== 'ipv6') || !/^[0-9a-fA-F:.%a-z]{2,64}$/.test(address)) return [];
      return [{ nic: clean(r['name']), address, family }];
    });
    const mac = clean(r['hardware-address']);
    return [{ name: clean(r['name']), mac: /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac) ? mac : null, addresses }];
  });
}

/** The guest's OS and NICs from its agent; throws when the agent does not answer within `timeoutMs`. */
export async function guestInfo(socketPath: string, timeoutMs = 3000): Promise<GuestInfo> {
  const deadline = Date.now() + timeoutMs;
  const s = await AgentSession.open(socketPath, deadline);
  try {
    const os = osOf(await s.execute('guest-get-osinfo', deadline));
    const nics = nicsOf(await s.execute('guest-network-get-interfaces', deadline));
    return { os, nics };
  } finally {
    s.close();
  }
}

/** One agent command and its `return` (unchecked: the caller checks what it reads). */
export async function agentCommand(socketPath: string, command: string, args?: Record<string, unknown>, timeoutMs = 3000): Promise<unknown> {
  const deadline = Date.now() + timeoutMs;
  const s = await AgentSession.open(socketPath, deadline);
  try { return await s.execute(command, deadline, args); } finally { s.close(); }
}

/** Asks the agent to power the guest off; resolves once the request is sent (the agent does not reply when it works). */
export async function agentShutdown(socketPath: string, timeoutMs = 3000): Promise<void> {
  const s = await AgentSession.open(socketPath, Date.now() + timeoutMs);
  try {
    s.send('guest-shutdown', { mode: 'powerdown' });
    await new Promise((r) => setTimeout(r, 200)); // let the write leave before the channel closes
  } finally {
    s.close();
  }
}
