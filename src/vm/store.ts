/**
 * @module vm/store: the state store: one directory per VM under a state root, vm.json
 * written atomically (temp file, fsync, rename), and per-VM operation locks that a dead
 * holder cannot keep (the lock names the holder's pid and start time).
 */
import { closeSync, fsync, openSync, promises as fsp, renameSync, writeFileSync, constants as C } from 'node:fs';
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

export class StateStore {
  constructor(readonly root: string, private readonly fs: Fs) {}

  paths(name: string): VmPaths {
    const dir = join(this.root, 'vms', name);
    return {
      dir, record: join(dir, 'vm.json'), qmpSocket: join(dir, 'qmp.sock'), serialSocket: join(dir, 'serial.sock'),
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
      const names = await fsp.readdir(join(this.root, 'vms'));
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

  async tryRead(name: string): Promise<VmRecord | null> {
    const path = this.paths(name).record;
    let text: string;
    try {
      text = await fsp.readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new VmError('VM_IO', `reading the state of VM ${name} failed`, { context: { vm: name, path }, cause: err });
    }
    try {
      const rec = JSON.parse(text) as VmRecord;
      if (rec.version !== 1 || rec.name !== name || typeof rec.phase !== 'string') throw new Error('unexpected shape');
      if (rec.undo !== undefined) rec.undo = rec.undo.map(readUndo).filter((u) => u !== null);
      return rec;
    } catch (cause) {
      throw new VmError('VM_STATE_CORRUPT', `the state file of VM ${name} is not a valid record`, {
        context: { vm: name, path }, cause, suggestions: [`inspect or remove ${path}`],
      });
    }
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

  /** Writes vm.json atomically: a reader sees the old or the new record, never a torn one. */
  async write(rec: VmRecord): Promise<void> {
    const p = this.paths(rec.name);
    const tmp = `${p.record}.tmp-${process.pid}`;
    // Only the fsync goes through the thread pool: open, write, close and rename are page-cache
    // calls, and on a loaded host each pool trip cost more than the call (a start writes ~5 times).
    const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_TRUNC, 0o600);
    try {
      writeFileSync(fd, `${JSON.stringify(rec, null, 2)}\n`);
      await new Promise<void>((resolve, reject) => { fsync(fd, (e) => (e ? reject(e) : resolve())); });
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, p.record);
  }

  /** Removes the VM's directory and everything in it. */
  async remove(name: string): Promise<void> {
    checkName(name);
    await fsp.rm(this.paths(name).dir, { recursive: true, force: true });
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
    await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
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
        await fsp.writeFile(path, body, { flag: 'wx', mode: 0o600 });
        return { path, release: () => fsp.rm(path, { force: true }) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await this.lockHolder(path);
      if (holder === null && (await this.youngerThan(path, 2000))) {
        await new Promise((r) => setTimeout(r, 20)); // being written right now
        continue;
      }
      if (holder === null || !(await isAlive(this.fs, holder))) {
        await fsp.rm(path, { force: true }); // stale: its holder died
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
      return Date.now() - (await fsp.stat(path)).mtimeMs < ms;
    } catch {
      return false;
    }
  }

  private async lockHolder(path: string): Promise<(ProcId & { op: string }) | null> {
    try {
      const v = JSON.parse(await fsp.readFile(path, 'utf8')) as ProcId & { op: string };
      return typeof v.pid === 'number' && typeof v.startTime === 'number' ? v : null;
    } catch {
      return null;
    }
  }
}
