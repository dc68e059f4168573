/**
 * @module vm/session: the daemon's one held QMP connection per VM. QEMU serves one monitor
 * client at a time, so every verb that talks to QEMU borrows the held client (a `QmpConn`
 * whose close is a no-op) instead of connecting, and the supervisor reads its events.
 */
import { QmpClient, type QmpEventName } from '../qmp/index.js';
import type { QmpConn, QmpEvents } from './ports.js';

export class QmpSessions {
  private readonly held = new Map<string, Promise<QmpClient>>();

  /** Borrows the held client for `path`, connecting (and holding) one if there is none or it closed. */
  async connect(path: string, timeoutMs: number): Promise<QmpConn> {
    const c = await this.client(path, timeoutMs);
    return {
      execute: (command, args, t, fds) => c.executeUntyped(command, args, { ...(t === undefined ? {} : { timeoutMs: t }), ...(fds === undefined ? {} : { fds: [...fds] }) }),
      events: (names) => c.events(names as readonly QmpEventName[]) as unknown as QmpEvents, // seen untyped, like execute
      close: async () => { /* held: the session outlives the verb */ },
    };
  }

  async client(path: string, timeoutMs = 5000): Promise<QmpClient> {
    const cur = this.held.get(path);
    if (cur !== undefined) {
      const c = await cur.catch(() => undefined);
      if (c?.isOpen === true) return c;
      if (this.held.get(path) === cur) this.held.delete(path);
    }
    const p = QmpClient.connect({ path }, { timeoutMs });
    this.held.set(path, p);
    p.then((c) => c.closed.then(() => { if (this.held.get(path) === p) this.held.delete(path); }), () => { if (this.held.get(path) === p) this.held.delete(path); });
    return p;
  }

  /** The open held client for `path`, if any (no connecting). */
  async current(path: string): Promise<QmpClient | undefined> {
    const c = await this.held.get(path)?.catch(() => undefined);
    return c?.isOpen === true ? c : undefined;
  }

  /** Drops the held connection (QEMU keeps running; a later verb connects again). */
  async release(path: string): Promise<void> {
    const p = this.held.get(path);
    this.held.delete(path);
    const c = await p?.catch(() => undefined);
    await c?.close().catch(() => undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.held.keys()].map((p) => this.release(p)));
  }
}
