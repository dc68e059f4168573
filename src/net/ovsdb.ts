/**
 * @module net/ovsdb: Open vSwitch ports through ovsdb-server's JSON-RPC (RFC 7047) on its
 * unix socket: one transaction per change instead of an ovs-vsctl process each; an added
 * port is waited for until ovs-vswitchd has applied it (next_cfg/cur_cfg), a removal is not.
 */
import { connect, type Socket } from 'node:net';
import type { OvsTarget } from './steps.js';

/** Open vSwitch as qemu-warden uses it. Every method throws an OvsdbError on failure. */
export interface OvsdbPort {
  bridgeExists(t: OvsTarget, bridge: string): Promise<boolean>;
  /**
   * Replaces any port named `ifname` by one on `bridge` with these external-ids (and VLAN
   * tag); first waits until ovs-vswitchd has applied every earlier change (a removal of the
   * same name, say), then until it has applied this one.
   */
  addPort(t: OvsTarget, p: { bridge: string; ifname: string; vlan?: number; externalIds: Record<string, string> }): Promise<void>;
  /**
   * Removes the port named `ifname` from whichever bridge has it; nothing when there is none.
   * Returns once ovsdb committed it; ovs-vswitchd applies it on its own time (the next
   * addPort waits for that).
   */
  delPort(t: OvsTarget, ifname: string): Promise<void>;
  /** Every Interface row: its name and external-ids (for cleanup by owner). */
  interfaces(t: OvsTarget): Promise<Array<{ name: string; externalIds: Record<string, string> }>>;
}

export type OvsdbErrorKind = 'connect' | 'timeout' | 'transaction' | 'protocol';

export class OvsdbError extends Error {
  constructor(readonly kind: OvsdbErrorKind, message: string, readonly detail: unknown = undefined) {
    super(message);
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Row = Record<string, Json>;
type OpResult = { rows?: Row[]; count?: number; uuid?: Json; error?: string; details?: string };

/** Splits a byte stream of concatenated JSON texts (ovsdb-server sends no delimiter) into whole texts. */
export class JsonSplitter {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scanned = 0;

  push(chunk: string): string[] {
    this.buf += chunk;
    const out: string[] = [];
    let start = 0;
    for (let i = this.scanned; i < this.buf.length; i++) {
      const c = this.buf.charCodeAt(i);
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === 0x5c) this.escaped = true;
        else if (c === 0x22) this.inString = false;
      } else if (c === 0x22) this.inString = true;
      else if (c === 0x7b || c === 0x5b) this.depth++;
      else if ((c === 0x7d || c === 0x5d) && --this.depth === 0) {
        out.push(this.buf.slice(start, i + 1));
        start = i + 1;
      }
    }
    this.buf = this.buf.slice(start).replace(/^\s+/, '');
    this.scanned = this.buf.length;
    return out;
  }
}

/** One JSON-RPC session with ovsdb-server. */
class Session {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: Json) => void; reject: (e: Error) => void }>();
  private readonly splitter = new JsonSplitter();
  private failure: Error | undefined;
  /** Latest cur_cfg seen by the "cfg" monitor, and who waits for a value. */
  curCfg = -1;
  private cfgWaiters: Array<() => void> = [];

  private monitoring: Promise<void> | undefined;

  private constructor(private readonly socket: Socket, private readonly db: string) {
    // Held open between the calls of one client (see OvsdbClient), but never holding the
    // process open by itself: ref'd only while a request is pending.
    socket.unref();
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => { for (const text of this.splitter.push(s)) this.onMessage(text); });
    socket.on('error', (e) => this.fail(new OvsdbError('connect', `ovsdb ${db}: ${e.message}`)));
    socket.on('close', () => this.fail(new OvsdbError('connect', `ovsdb ${db} closed the connection`)));
  }

  static open(db: string, timeoutMs: number): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = connect(db);
      const timer = setTimeout(() => { socket.destroy(); reject(new OvsdbError('timeout', `connecting to ovsdb ${db} timed out`)); }, timeoutMs);
      socket.once('connect', () => { clearTimeout(timer); socket.removeAllListeners('error'); resolve(new Session(socket, db)); });
      socket.once('error', (e) => { clearTimeout(timer); reject(new OvsdbError('connect', `connecting to ovsdb ${db} failed: ${e.message}`, { code: (e as NodeJS.ErrnoException).code })); });
    });
  }

  /** Failed (closed, timed out, protocol error): not to be used again. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  private fail(e: Error): void {
    this.failure ??= e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    for (const w of this.cfgWaiters.splice(0)) w();
  }

  private onMessage(text: string): void {
    let m: { id?: Json; method?: string; params?: Json[]; result?: Json; error?: Json };
    try { m = JSON.parse(text) as typeof m; } catch { return this.fail(new OvsdbError('protocol', `ovsdb ${this.db} sent invalid JSON`)); }
    if (m.method === 'echo') { this.send({ id: m.id ?? null, result: m.params ?? [], error: null }); return; }
    if (m.method === 'update' && Array.isArray(m.params) && m.params[0] === 'cfg') { this.noteCfg(m.params[1]); return; }
    if (typeof m.id !== 'number') return;
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.socket.unref();
    if (m.error !== null && m.error !== undefined) p?.reject(new OvsdbError('protocol', `ovsdb ${this.db}: ${JSON.stringify(m.error)}`));
    else p?.resolve(m.result ?? null);
  }

  /**
   * Reads cur_cfg out of a monitor reply or update: {Open_vSwitch: {uuid: {new: {cur_cfg}}}}.
   * cur_cfg only grows, and the monitor's initial reply is seen after updates that followed
   * it (a promise resolves later than a notification is handled): keep the largest.
   */
  noteCfg(update: Json | undefined): void {
    const rows = (update as { Open_vSwitch?: Record<string, { new?: { cur_cfg?: number } }> } | null)?.Open_vSwitch ?? {};
    for (const r of Object.values(rows)) if (typeof r.new?.cur_cfg === 'number') this.curCfg = Math.max(this.curCfg, r.new.cur_cfg);
    for (const w of this.cfgWaiters.splice(0)) w();
  }

  private send(msg: Record<string, Json>): void {
    this.socket.write(JSON.stringify(msg));
  }

  request(method: string, params: Json[]): Promise<Json> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const id = this.nextId++;
    this.send({ method, params, id });
    if (this.pending.size === 0) this.socket.ref();
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }

  /** Starts the "cfg" monitor of cur_cfg once per session (pipelined with what follows); resolves once its first value is noted. */
  monitorCfg(): Promise<void> {
    this.monitoring ??= this.request('monitor', ['Open_vSwitch', 'cfg', { Open_vSwitch: { columns: ['cur_cfg'] } }]).then((r) => this.noteCfg(r));
    return this.monitoring;
  }

  /** Resolves once cur_cfg >= target (ovs-vswitchd applied the change), or at the deadline with false. */
  async cfgReached(target: number, deadline: number): Promise<boolean> {
    while (this.curCfg < target) {
      if (this.failure !== undefined) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.cfgWaiters.push(() => { clearTimeout(timer); resolve(); });
      });
    }
    return true;
  }

  close(): void {
    this.fail(new OvsdbError('connect', `the session with ovsdb ${this.db} was closed`));
    this.socket.destroy();
  }
}

const eq = (column: string, value: Json): Json => [column, '==', value];
const uuidSet = (uuids: string[]): Json => ['set', uuids.map((u) => ['uuid', u])];

/**
 * Runs `fn` on the client's session with `t.db` (opened on first use, again after a failure);
 * the whole exchange, connecting included, is bounded by the target's timeout. A session that
 * timed out is closed: its late answers must not reach the next call.
 */
async function withSession<T>(sessions: Sessions, t: OvsTarget, fn: (s: Session, deadline: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + t.timeoutSec * 1000;
  const s = await sessionFor(sessions, t.db, t.timeoutSec * 1000);
  let timer: NodeJS.Timeout | undefined;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new OvsdbError('timeout', `ovsdb ${t.db} did not answer within ${t.timeoutSec} s`)), Math.max(0, deadline - Date.now()));
    });
    return await Promise.race([fn(s, deadline), timeout]);
  } catch (err) {
    if (err instanceof OvsdbError && err.kind === 'timeout') s.close();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Sessions (or their opening) by socket path; concurrent calls share one. */
type Sessions = Map<string, Promise<Session>>;

/** The live session with `db`: the cached one unless it failed, else a new one. */
async function sessionFor(sessions: Sessions, db: string, timeoutMs: number): Promise<Session> {
  for (;;) {
    const cached = sessions.get(db);
    if (cached === undefined) {
      const opening = Session.open(db, timeoutMs);
      sessions.set(db, opening);
      opening.catch(() => { if (sessions.get(db) === opening) sessions.delete(db); });
      return opening;
    }
    const s = await cached.catch(() => undefined);
    if (s !== undefined && !s.failed) return s;
    if (sessions.get(db) === cached) sessions.delete(db);
  }
}

async function transact(s: Session, what: string, ops: Json[]): Promise<OpResult[]> {
  const results = (await s.request('transact', ['Open_vSwitch', ...ops])) as OpResult[];
  const bad = results.find((r) => r !== null && typeof r.error === 'string');
  if (bad !== undefined) throw new OvsdbError('transaction', `ovsdb transaction (${what}) failed: ${bad.error}${bad.details ? `: ${bad.details}` : ''}`, results);
  return results;
}

/** The ops that end a change: bump next_cfg and read it back, so the caller can wait for ovs-vswitchd. */
const bumpCfg: Json[] = [
  { op: 'mutate', table: 'Open_vSwitch', where: [], mutations: [['next_cfg', '+=', 1]] },
  { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] },
];

/** The next_cfg a reply's select of Open_vSwitch (at `index`) read. */
function nextCfgOf(results: OpResult[], index: number, t: OvsTarget, what: string): number {
  const cfg = results[index]?.rows?.[0]?.['next_cfg'];
  if (typeof cfg !== 'number') throw new OvsdbError('protocol', `ovsdb ${t.db}: no next_cfg in the reply to ${what}`);
  return cfg;
}

/** Commits `ops` + bumpCfg; returns the next_cfg that ovs-vswitchd reports as cur_cfg once it has applied them. */
async function commit(s: Session, t: OvsTarget, what: string, ops: Json[]): Promise<number> {
  const results = await transact(s, what, [...ops, ...bumpCfg, { op: 'comment', comment: `qemu-warden: ${what}` }]);
  return nextCfgOf(results, ops.length + 1, t, what);
}

/** Waits until ovs-vswitchd reports cur_cfg >= target (the "cfg" monitor must be running). */
async function applied(s: Session, t: OvsTarget, deadline: number, target: number, what: string): Promise<void> {
  if (!(await s.cfgReached(target, deadline))) {
    throw new OvsdbError('timeout', `${what}: ovs-vswitchd did not apply the change within ${t.timeoutSec} s (is ovs-vswitchd running?)`);
  }
}

const portSelect = (ifname: string): Json => ({ op: 'select', table: 'Port', where: [eq('name', ifname)], columns: ['_uuid'] });

/** uuids of the Port rows a select returned (normally none or one), and a wait op that fails a later transaction if that changed. */
function portsNamed(sel: OpResult | undefined, ifname: string): { uuids: string[]; still: Json } {
  const rows = sel?.rows ?? [];
  return {
    uuids: rows.map((r) => (r['_uuid'] as [string, string])[1]),
    still: { op: 'wait', table: 'Port', where: [eq('name', ifname)], columns: ['_uuid'], until: '==', rows, timeout: 0 },
  };
}

/**
 * The real OvsdbPort: JSON-RPC over the db socket, one session per socket path kept for the
 * client's calls (an apply's bridge check and port add, or an undo's removals, reconnect
 * for nothing); `close()` ends them. An idle session does not hold the process open.
 */
export class OvsdbClient implements OvsdbPort {
  private readonly sessions: Sessions = new Map();

  /** Closes the sessions; a later call opens a new one. */
  close(): void {
    for (const s of this.sessions.values()) s.then((x) => x.close(), () => {});
    this.sessions.clear();
  }

  bridgeExists(t: OvsTarget, bridge: string): Promise<boolean> {
    return withSession(this.sessions, t, async (s) => {
      const [sel] = await transact(s, `select Bridge ${bridge}`, [{ op: 'select', table: 'Bridge', where: [eq('name', bridge)], columns: ['name'] }]);
      return (sel?.rows ?? []).length > 0;
    });
  }

  addPort(t: OvsTarget, p: { bridge: string; ifname: string; vlan?: number; externalIds: Record<string, string> }): Promise<void> {
    return withSession(this.sessions, t, async (s, deadline) => {
      const what = `add-port ${p.bridge} ${p.ifname}`;
      // One round trip: the cfg monitor (cur_cfg), the Port rows of that name and next_cfg.
      const monitor = s.monitorCfg();
      const read = await transact(s, `select Port ${p.ifname}`, [portSelect(p.ifname), { op: 'select', table: 'Open_vSwitch', where: [], columns: ['next_cfg'] }]);
      await monitor;
      // Removals return without waiting for ovs-vswitchd: if one (of this very name, say) is
      // still being applied, let it finish first, so that ovs-vswitchd never sees the old port
      // and the new one as a single change and keeps the old port's state for the new device.
      await applied(s, t, deadline, nextCfgOf(read, 1, t, what), `${what}: waiting for earlier changes`);
      const old = portsNamed(read[0], p.ifname);
      const ids: Json = ['map', Object.keys(p.externalIds).sort().map((k) => [k, p.externalIds[k]!])];
      const target = await commit(s, t, what, [
        old.still,
        { op: 'wait', table: 'Bridge', where: [eq('name', p.bridge)], columns: ['name'], until: '==', rows: [{ name: p.bridge }], timeout: 0 },
        ...(old.uuids.length === 0 ? [] : [{ op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'delete', uuidSet(old.uuids)]] }]),
        { op: 'insert', table: 'Interface', row: { name: p.ifname, external_ids: ids }, 'uuid-name': 'iface' },
        { op: 'insert', table: 'Port', row: { name: p.ifname, interfaces: ['named-uuid', 'iface'], ...(p.vlan === undefined ? {} : { tag: p.vlan }) }, 'uuid-name': 'port' },
        { op: 'mutate', table: 'Bridge', where: [eq('name', p.bridge)], mutations: [['ports', 'insert', ['set', [['named-uuid', 'port']]]]] },
      ]);
      await applied(s, t, deadline, target, `${what} committed, but`);
    });
  }

  delPort(t: OvsTarget, ifname: string): Promise<void> {
    return withSession(this.sessions, t, async (s) => {
      const [sel] = await transact(s, `select Port ${ifname}`, [portSelect(ifname)]);
      const old = portsNamed(sel, ifname);
      if (old.uuids.length === 0) return;
      // Port and Interface rows are not roots: once no bridge refers to them, ovsdb removes them.
      // next_cfg is bumped, so the next addPort can tell whether ovs-vswitchd has applied this.
      await commit(s, t, `del-port ${ifname}`, [old.still,
        { op: 'mutate', table: 'Bridge', where: [], mutations: [['ports', 'delete', uuidSet(old.uuids)]] }]);
    });
  }

  interfaces(t: OvsTarget): Promise<Array<{ name: string; externalIds: Record<string, string> }>> {
    return withSession(this.sessions, t, async (s) => {
      const [sel] = await transact(s, 'select Interface', [{ op: 'select', table: 'Interface', where: [], columns: ['name', 'external_ids'] }]);
      return (sel?.rows ?? []).map((r) => ({
        name: String(r['name']),
        externalIds: Object.fromEntries(((r['external_ids'] as ['map', Array<[string, string]>])?.[1] ?? [])),
      }));
    });
  }
}
