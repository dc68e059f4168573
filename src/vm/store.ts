/**
 * @module vm/store: the state store: one directory per VM under a state root, vm.json
 * written atomically (temp file, rename; fsync'd when what must outlive the host changed),
 * and per-VM operation locks that a dead holder cannot keep (the lock names the holder's
 * pid and start time).
 */
import { closeSync, fsync, linkSync, mkdirSync, openSync, promises as fsp, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, constants as C } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Fs } from '../sys/index.js';
import { VmError } from './errors.js';
import { isAlive, procId } from './proc.js';
import type { ProcId, VmRecord } from './record.js';
import { readUndo } from './undo.js';

export const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The default state root: /var/lib/warden as root, else $XDG_STATE_HOME/warden (~/.local/state/warden). */
export function defaultStateRoot(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): string {
  if (env['WARDEN_STATE_DIR']) return env['WARDEN_STATE_DIR'];
  if (uid === 0) return '/var/lib/warden';
  return join(env['XDG_STATE_HOME'] || join(homedir(), '.local', 'state'), 'warden');
}

export interface VmPaths {
  dir: string;
  record: string;
  /** The record as of its last durable change: a second name of that write's fsync'd file (see StateStore.write). */
  durable: string;
  qmpSocket: string;
  serialSocket: string;
  serialLog: string;
  /** QEMU's stderr (and the launcher's). */
  qemuLog: string;
  uefiVars: string;
  vncSocket: string;
  lock: string;
}

export interface Lock {
  readonly path: string;
  release(): Promise<void>;
}

export function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new VmError('VM_BAD_NAME', `the VM name ${JSON.stringify(name)} is not valid`, {
      context: { vm: name }, suggestions: ['a name is 1-63 characters of a-z, 0-9 and -, starting with a letter or digit'],
    });
  }
}

/**
 * Record fields that describe only the current run: nothing they name outlives the host (see
 * StateStore.write). `hotplug` too: its entries name devices, block nodes and fdsets inside the
 * running QEMU (an entry of an older run is stale: vm/hotplug entriesOf), and what a hot-plugged
 * NIC leaves that can outlive a reboot (an OVS port, a helper's lent directory) is journalled in
 * `undo` as well, which stays durable; so does the spec a persistent attach or detach changes.
 */
export const VOLATILE = ['phase', 'updatedAt', 'run', 'helpers', 'disks', 'intent', 'warnings', 'hotplug'] as const;
/** Undo kinds whose host objects die with the host: processes (log writer), the jail (cgroups, lease holders), socket listeners. */
const VOLATILE_UNDO = new Set(['sockets', 'logd', 'jail']);

/**
 * Whether a net undo log (src/net UndoLog) names something that outlives the host: an Open
 * vSwitch port (kept in ovsdb). A TAP or macvtap link and its Linux-bridge port die with the
 * host. A log of any other shape counts as outliving it (the conservative side).
 */
function netLogOutlivesHost(log: unknown): boolean {
  const entries = (log as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(entries)) return true;
  return entries.some((e) => !['delete-link', 'bridge-detach'].includes((e as { kind?: unknown } | null)?.kind as string));
}

/** The part of a record that must survive a power loss, as a comparable string. */
export function durablePart(rec: VmRecord): string {
  const o: Record<string, unknown> = { ...rec };
  for (const k of VOLATILE) delete o[k];
  o['undo'] = (rec.undo ?? []).filter((u) => !VOLATILE_UNDO.has(u.kind) && (u.kind !== 'net' || netLogOutlivesHost(u.log)));
  return JSON.stringify(o);
}

/** durablePart of the record in `path`, or null when there is none readable. */
function durablePartOf(path: string, name: string): string | null {
  const r = readRecord(path, name);
  return r.rec === undefined ? null : durablePart(r.rec);
}

/** A record file read synchronously (a small page-cache read): the record, or why not. */
function readRecord(path: string, name: string): { rec?: VmRecord; missing: boolean; error?: VmError } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { missing: true };
    return { missing: false, error: new VmError('VM_IO', `reading the state of VM ${name} failed`, { context: { vm: name, path }, cause: err }) };
  }
  try {
    const rec = JSON.parse(text) as VmRecord;
    if (rec.version !== 1 || rec.name !== name || typeof rec.phase !== 'string') throw new Error('unexpected shape');
    if (rec.undo !== undefined) rec.undo = rec.undo.map(readUndo).filter((u) => u !== null);
    return { rec, missing: false };
  } catch (cause) {
    return { missing: false, error: new VmError('VM_STATE_CORRUPT', `the state file of VM ${name} is not a valid record`, {
      context: { vm: name, path }, cause, suggestions: [`inspect or remove ${path}`],
    }) };
  }
}

const fsyncAsync = (fd: number): Promise<void> => new Promise((resolve, reject) => { fsync(fd, (e) => (e ? reject(e) : resolve())); });

export class StateStore {
  constructor(readonly root: string, private readonly fs: Fs) {}

  paths(name: string): VmPaths {
    const dir = join(this.root, 'vms', name);
    return {
      dir, record: join(dir, 'vm.json'), durable: join(dir, 'vm.durable.json'), qmpSocket: join(dir, 'qmp.sock'), serialSocket: join(dir, 'serial.sock'),
      serialLog: join(dir, 'serial.log'), qemuLog: join(dir, 'qemu.log'), uefiVars: join(dir, 'uefi-vars.fd'),
      vncSocket: join(dir, 'vnc.sock'), lock: join(dir, 'lock'),
    };
  }

  /** Directory for caches shared by all VMs (QEMU capabilities, the KVM verdict). */
  get cacheDir(): string {
    return join(this.root, 'cache');
  }

  async list(): Promise<string[]> {
    try {
      const names = readdirSync(join(this.root, 'vms'));
      return names.filter((n) => NAME_RE.test(n)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async read(name: string): Promise<VmRecord> {
    checkName(name);
    const rec = await this.tryRead(name);
    if (rec === null) {
      throw new VmError('VM_NOT_FOUND', `VM ${name} does not exist in ${this.root}`, {
        context: { vm: name, stateRoot: this.root }, suggestions: ['list VMs with: warden list', 'create one with: warden create FILE'],
      });
    }
    return rec;
  }

  /**
   * The record, or null when the VM does not exist. vm.json is read; when it is missing or not
   * a valid record, the durable copy is (after a power loss vm.json can be torn: see write()),
   * and only when that fails too is the record VM_STATE_CORRUPT.
   */
  async tryRead(name: string): Promise<VmRecord | null> {
    const p = this.paths(name);
    const main = readRecord(p.record, name);
    if (main.rec !== undefined) return main.rec;
    const durable = readRecord(p.durable, name);
    if (durable.rec !== undefined) return durable.rec;
    if (main.missing) return null;
    throw main.error;
  }

  /** Creates the VM's directory and first record; VM_EXISTS if the name is taken. */
  async create(rec: VmRecord): Promise<void> {
    checkName(rec.name);
    const p = this.paths(rec.name);
    try {
      await fsp.mkdir(join(this.root, 'vms'), { recursive: true, mode: 0o700 });
      await fsp.mkdir(p.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new VmError('VM_EXISTS', `VM ${rec.name} already exists`, {
          context: { vm: rec.name, dir: p.dir }, suggestions: [`delete it first (warden delete ${rec.name}) or choose another name`],
        });
      }
      throw new VmError('VM_IO', `creating the state directory ${p.dir} of VM ${rec.name} failed`, {
        context: { vm: rec.name, dir: p.dir, stateRoot: this.root }, cause: err,
        suggestions: ['choose a state root you can write: --state-dir DIR or $WARDEN_STATE_DIR'],
      });
    }
    await this.write(rec);
  }

  /**
   * Writes vm.json atomically (temp file, rename): a reader sees the old or the new record,
   * never a torn one, also after this process dies at any point (the page cache outlives it).
   *
   * Only a power loss (or a kernel crash) can lose what is not fsync'd, and then nothing of a
   * run outlives it: QEMU, its jail's processes, cgroups and leases' holders, the log writer,
   * the sockets' listeners are gone. So run state ({@link VOLATILE} fields, undo entries of
   * those kinds) needs atomic visibility, not durability. The rest (the spec, owner, save
   * file, snapshots, the net (when it holds an OVS port: netLogOutlivesHost) and helper undo entries, which name what can
   * outlive a reboot: an Open vSwitch port, a state directory lent to a helper's uid) must
   * survive a power loss, and a file whose rename reached the disk before its data is empty.
   * Hence: when the durable part differs from vm.durable.json's, the new file is fsync'd,
   * renamed into place, linked as vm.durable.json, and the directory fsync'd before this
   * returns; otherwise no fsync at all. After a power loss vm.json is this write or a later
   * one, or torn; a torn (or missing) vm.json reads as vm.durable.json, whose durable part is
   * that of every later write. What a start writes (claim, log writer, jail, run, running)
   * is run state: no fsync on a start's path, unless host networking or helpers are set up.
   * So is the hot-plug journal (record-before-change against a killed manager needs only the
   * rename's visibility; after a power loss its QEMU is gone): a live-only disk attach or detach
   * writes no fsync, a persistent one fsyncs once, for its spec change.
   */
  async write(rec: VmRecord): Promise<void> {
    const p = this.paths(rec.name);
    const tmp = `${p.record}.tmp-${process.pid}`;
    const durable = durablePart(rec) !== durablePartOf(p.durable, rec.name);
    // Open, write, close and rename are page-cache calls, done synchronously: on a loaded host
    // each thread-pool trip cost more than the call. Only the fsyncs of a durable write go there.
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(rec, null, 2)}\n`);
      if (durable) await fsyncAsync(fd);
    } finally {
      closeSync(fd);
    }
    if (!durable) { renameSync(tmp, p.record); return; }
    // vm.json first: a reader falls back to vm.durable.json only when vm.json is unreadable.
    const link = `${p.durable}.tmp-${process.pid}`;
    rmSync(link, { force: true });
    try {
      linkSync(tmp, link);
    } catch {
      // A file system without hard links: a second fsync'd copy instead.
      const copy = openSync(link, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
      try { writeFileSync(copy, readFileSync(tmp)); await fsyncAsync(copy); } finally { closeSync(copy); }
    }
    renameSync(tmp, p.record);
    renameSync(link, p.durable);
    const dir = openSync(p.dir, C.O_RDONLY | C.O_DIRECTORY);
    try { await fsyncAsync(dir); } finally { closeSync(dir); }
  }

  /** Removes the VM's directory and everything in it. */
  async remove(name: string): Promise<void> {
    checkName(name);
    const p = this.paths(name);
    // The durable copy goes first: a manager killed midway must leave vm.json (the VM still
    // there, deletable again) and never vm.durable.json alone, which reads as the VM brought back.
    rmSync(p.durable, { force: true });
    rmSync(p.record, { force: true });
    await fsp.rm(p.dir, { recursive: true, force: true });
  }

  /** Takes the VM's operation lock; VM_BUSY when a live process holds it, a dead holder's lock is taken over. */
  async lock(name: string, op: string): Promise<Lock> {
    try {
      return await this.takeLock(this.paths(name).lock, `VM ${name}`, op, 0);
    } catch (err) {
      // The directory went away between a read and the lock: a concurrent delete won.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') await this.read(name);
      throw err;
    }
  }

  /**
   * The console lock: QEMU serves one client per serial socket and leaves a second one
   * connected but unheard, so a second console must be refused rather than left dead.
   */
  async lockConsole(name: string): Promise<Lock> {
    return this.takeLock(join(this.paths(name).dir, 'console.lock'), `the console of VM ${name}`, 'console', 0);
  }

  /** The store-wide lock, held briefly around cross-VM checks (disk claims); waits up to `waitMs`. */
  async lockRoot(op: string, waitMs = 10_000): Promise<Lock> {
    mkdirSync(this.root, { recursive: true, mode: 0o700 });
    return this.takeLock(join(this.root, 'store.lock'), 'the state store', op, waitMs);
  }

  /**
   * The daemon lock: while a daemon lives it owns this state root, and the CLI routes its
   * verbs through the socket the lock names instead of racing the daemon on the lock files.
   */
  async lockDaemon(socket: string): Promise<Lock> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    return this.takeLock(join(this.root, 'daemon.lock'), 'the state root', 'daemon', 0, { socket });
  }

  /** The live daemon that owns this state root, and its socket; null when none. */
  async daemonOwner(): Promise<(ProcId & { socket: string }) | null> {
    const h = await this.lockHolder(join(this.root, 'daemon.lock')) as (ProcId & { op: string; socket?: unknown }) | null;
    if (h === null || typeof h.socket !== 'string' || !(await isAlive(this.fs, h))) return null;
    return { pid: h.pid, startTime: h.startTime, socket: h.socket };
  }

  private async takeLock(path: string, what: string, op: string, waitMs: number, extra: Record<string, unknown> = {}): Promise<Lock> {
    const me = await procId(this.fs, process.pid);
    const body = JSON.stringify({ ...me, op, ...extra });
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        // Lock files are page-cache calls, made synchronously (a start takes and releases two).
        writeFileSync(path, body, { flag: 'wx', mode: 0o600 });
        return { path, release: async () => rmSync(path, { force: true }) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await this.lockHolder(path);
      if (holder === null && (await this.youngerThan(path, 2000))) {
        await new Promise((r) => setTimeout(r, 20)); // being written right now
        continue;
      }
      if (holder === null || !(await isAlive(this.fs, holder))) {
        rmSync(path, { force: true }); // stale: its holder died
        continue;
      }
      if (Date.now() >= deadline) {
        throw new VmError('VM_BUSY', `cannot ${op} ${what}: process ${holder.pid} is running "${holder.op}" on it`, {
          context: { lock: path, holder }, suggestions: ['wait for that operation to finish and try again'],
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  private async youngerThan(path: string, ms: number): Promise<boolean> {
    try {
      return Date.now() - statSync(path).mtimeMs < ms;
    } catch {
      return false;
    }
  }

  private async lockHolder(path: string): Promise<(ProcId & { op: string }) | null> {
    try {
      const v = JSON.parse(readFileSync(path, 'utf8')) as ProcId & { op: string };
      return typeof v.pid === 'number' && typeof v.startTime === 'number' ? v : null;
    } catch {
      return null;
    }
  }
}
