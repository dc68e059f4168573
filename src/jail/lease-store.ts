/** @module jail/lease-store: uid/gid leases and jail records, persisted in one JSON file with atomic writes under a lock file. */
import { mkdirSync, promises as fsp, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { JailError } from './errors.js';
import type { JailerConfig } from './config.js';
import { parseCgroupLayout } from './cgroup-plan.js';
import { isAlive, processId, type ProcessId } from './procfs.js';
import { RESERVED_FOR, hostIdProbe, readRangeConflicts, type IdInUse } from './uid-check.js';
import { loadNative, type NativeAddon } from '../sys/native.js';

/** Everything teardown and reconnection need, written before anything is created on the host. */
export interface JailRecord {
  name: string;
  uid: number;
  gid: number;
  /** True when the uid came from the range (released on teardown), false when the spec fixed it. */
  leased: boolean;
  /** Who keeps the lease alive: the launching manager at first, then the sandbox's monitor process. */
  holder: ProcessId;
  cgroupName: string;
  cgroupLeaves: string[];
  statusFile: string;
  /** Runtime dir owned by this jail (removed on teardown); absent when the caller chose the status file. */
  ownedRuntimeDir?: string;
  /** Who launched it (an opaque tag, e.g. a manager's state directory); see teardownJail. */
  owner?: string;
  /** The sandbox's outer process (bwrap's monitor) and the program itself, once started. */
  monitor?: ProcessId;
  program?: ProcessId;
  createdAt: string;
}

interface LeaseFile { version: 1; jails: Record<string, JailRecord> }

export interface LeaseRequest {
  name: string;
  /** A fixed uid/gid, or undefined to lease the lowest free uid (gid = uid). */
  fixed?: { uid: number; gid: number };
  cgroupName: string;
  cgroupLeaves: string[];
  statusFile: string;
  ownedRuntimeDir?: string;
  owner?: string;
}

/** Whether a record still has anything alive (a process, or a non-empty cgroup leaf); injected so tests can decide. */
export type LivenessProbe = (record: JailRecord) => Promise<boolean>;

const errno = (e: unknown): string | undefined => (e as NodeJS.ErrnoException)?.code;

/** The addon when it loads, else undefined (the store then renames as before). */
function optionalNative(): NativeAddon | undefined {
  try { return loadNative(); } catch { return undefined; }
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export const defaultLiveness: LivenessProbe = async (r) => {
  if ([r.holder, r.monitor, r.program].some((p) => isAlive(p))) return true;
  for (const leaf of r.cgroupLeaves) {
    let procs = '';
    try { procs = readFileSync(join(leaf, 'cgroup.procs'), 'utf8'); } catch { /* gone: empty */ }
    if (procs.trim() !== '') return true;
  }
  return false;
};

/** A fresh host-id check per acquire (its /proc and state scans are snapshots). */
export type HostIdsProbe = () => IdInUse;

/** The pids a launch learns after its record was written, as kept in the pids file. */
type StartedPids = Pick<JailRecord, 'holder' | 'monitor' | 'program'>;

export class LeaseStore {
  private readonly file: string;
  private readonly lock: string;
  /** Where notePids keeps each jail's pids (a name no jail can have: NAME_PATTERN starts alphanumeric). */
  private readonly pidsDir: string;
  private readonly hostIds: HostIdsProbe;

  /**
   * `hostIds` decides which ids of the range are someone's already (host accounts and
   * groups, live processes, files in the jailer's state); the default asks the host.
   */
  constructor(private readonly config: JailerConfig, private readonly alive: LivenessProbe = defaultLiveness, hostIds?: HostIdsProbe) {
    this.hostIds = hostIds ?? (() => hostIdProbe({ stateDirs: [config.stateDir, config.runtimeDir] }));
    this.file = join(config.stateDir, 'leases.json');
    this.lock = join(config.stateDir, 'leases.lock');
    this.pidsDir = join(config.runtimeDir, '.pids');
  }

  /**
   * Records a new jail and leases its uid; refuses a name or uid with a live holder. A stale
   * record (everything gone) frees its uid at once but stays, so teardownJail and attachJail
   * can still read its exit, until it is torn down or its name is launched again.
   */
  async acquire(req: LeaseRequest): Promise<JailRecord> {
    // The host's answers are gathered before the lock, while the range check reads its files:
    // they are snapshots either way (an account may appear a moment after any check), and
    // what the lock orders, the other jails' leases, is read under it.
    const inUse = req.fixed === undefined ? this.hostIds() : undefined;
    if (inUse !== undefined) {
      const first = inUse(this.config.uidRange.first).catch(() => null); // starts NSS, the /proc and state scans
      await Promise.all([this.checkRange(req.name), first]);
    }
    return this.locked(async (data) => {
      const live = await this.liveRecords(data);
      if (live.some((r) => r.name === req.name)) {
        throw new JailError('JAIL_BUSY', `jail "${req.name}" is already running`, { context: { jail: req.name, uid: data.jails[req.name]!.uid }, suggestions: ['tear it down first, or pick another name'] });
      }
      const sameCgroup = live.find((r) => r.cgroupName === req.cgroupName);
      if (sameCgroup !== undefined) {
        throw new JailError('JAIL_BUSY', `cgroup "${req.cgroupName}" of jail "${req.name}" belongs to live jail "${sameCgroup.name}"`, { context: { jail: req.name, cgroup: req.cgroupName, holder: sameCgroup.name } });
      }
      const used = new Set(live.flatMap((r) => [r.uid, r.gid]));
      const ids = req.fixed ?? await this.freeId(used, req.name, inUse!);
      if (req.fixed !== undefined && (used.has(ids.uid) || used.has(ids.gid))) {
        throw new JailError('JAIL_BUSY', `uid/gid ${ids.uid}/${ids.gid} for jail "${req.name}" is held by another live jail`, { context: { jail: req.name, ...ids } });
      }
      const holder = processId(process.pid) ?? { pid: process.pid, start: '?' };
      const { fixed: _fixed, ...rest } = req;
      const record: JailRecord = { ...rest, ...ids, leased: req.fixed === undefined, holder, createdAt: new Date().toISOString() };
      data.jails[req.name] = record;
      this.dropPids(req.name); // an earlier jail's of this name (never merged: another createdAt), tidied
      return record;
    });
  }

  async update(name: string, patch: Partial<Pick<JailRecord, 'holder' | 'monitor' | 'program'>>): Promise<void> {
    await this.locked(async (data) => {
      const r = data.jails[name];
      if (r !== undefined) data.jails[name] = { ...r, ...patch };
    });
  }

  /**
   * Records the pids of a started jail without rewriting the lease file: tmp + rename in the
   * runtime dir, no lock, no fsync. Pids are volatile facts (after a reboot they name nothing),
   * so they need no durability, only atomic visibility; a lost or torn pids file reads as no
   * pids, and then the record's cgroup still finds every process of the jail (teardownJail,
   * the liveness probe). Read back by get/list and under the lock, merged into the record
   * with the same createdAt.
   */
  notePids(record: Pick<JailRecord, 'name' | 'createdAt'>, pids: StartedPids): void {
    mkdirSync(this.pidsDir, { recursive: true, mode: 0o700 });
    const file = join(this.pidsDir, `${record.name}.json`);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ createdAt: record.createdAt, ...pids }), { mode: 0o600 });
    renameSync(tmp, file);
  }

  /** Drops the record; releasing an unknown name is fine (teardown is idempotent). */
  async release(name: string): Promise<void> {
    await this.locked(async (data) => { delete data.jails[name]; this.dropPids(name); });
  }

  /** The record with the pids notePids kept for it, if any (same createdAt: not an earlier jail's of the name). */
  private withPids(r: JailRecord): JailRecord {
    let text: string;
    try { text = readFileSync(join(this.pidsDir, `${r.name}.json`), 'utf8'); } catch { return r; }
    try {
      const { createdAt, holder, monitor, program } = JSON.parse(text) as StartedPids & { createdAt?: string };
      if (createdAt !== r.createdAt || holder === undefined || monitor === undefined || program === undefined) return r;
      return { ...r, holder, monitor, program };
    } catch { return r; } // torn (a crash of the host while writing): as if never written
  }

  private dropPids(name: string): void {
    try { unlinkSync(join(this.pidsDir, `${name}.json`)); } catch { /* none */ }
  }

  async get(name: string): Promise<JailRecord | undefined> {
    return (await this.read()).jails[name];
  }

  async list(): Promise<JailRecord[]> {
    return Object.values((await this.read()).jails);
  }

  /** The lowest id of the range that no live lease holds and nobody on the host has (an account, a process, files). */
  private async freeId(used: Set<number>, name: string, inUse: IdInUse): Promise<{ uid: number; gid: number }> {
    const { first, count } = this.config.uidRange;
    const skipped: string[] = [];
    for (let uid = first; uid < first + count; uid++) {
      if (used.has(uid)) continue;
      const why = await inUse(uid);
      if (why === null) return { uid, gid: uid };
      skipped.push(why);
    }
    throw new JailError('JAIL_NO_FREE_UID', `no free uid in ${first}-${first + count - 1} for jail "${name}"${skipped.length === 0 ? '' : ` (${skipped.length} taken on the host, e.g. ${skipped[0]})`}`, {
      context: { jail: name, first, count, hostTaken: skipped.slice(0, 10) }, suggestions: ['tear down unused jails or widen uidRange; warden host check lists who holds ids of the range'],
    });
  }

  /** A range the host hands out to users (login.defs, another user's subuid/subgid) is refused: its ids would be shared. */
  private async checkRange(name: string): Promise<void> {
    const range = this.config.uidRange;
    // Only overlaps that give ids to someone today; a subuid entry without newuidmap is reported by `warden host check`.
    const conflicts = (await readRangeConflicts(range)).filter((c) => c.active);
    if (conflicts.length === 0) return;
    throw new JailError('JAIL_UID_RANGE_CONFLICT', `the jail uid range ${range.first}-${range.first + range.count - 1} (for jail "${name}") overlaps ${conflicts.map((c) => `${c.source} (${c.detail})`).join('; ')}`, {
      context: { jail: name, range, conflicts },
      suggestions: [`move the range (uidRange) clear of them, and reserve it: usermod --add-subuids ${range.first}-${range.first + range.count - 1} --add-subgids ${range.first}-${range.first + range.count - 1} ${RESERVED_FOR} (see docs/jail.md)`],
    });
  }

  /** Records with anything still alive: only these hold their name and uid. */
  private async liveRecords(data: LeaseFile): Promise<JailRecord[]> {
    const live: JailRecord[] = [];
    for (const r of Object.values(data.jails)) if (await this.alive(r)) live.push(r);
    return live;
  }

  /**
   * The lease file. With `setAside` (under the lock), a torn file that can name nothing alive
   * (tornBeforeBoot) is renamed to leases.json.torn-TIME and the store starts empty; get and
   * list read it as empty. Any other unreadable file is JAIL_STATE_CORRUPT, left as it is.
   */
  private async read(setAside = false): Promise<LeaseFile> {
    let text: string;
    try { text = readFileSync(this.file, 'utf8'); } catch (e) {
      if (errno(e) === 'ENOENT') return { version: 1, jails: {} };
      throw e;
    }
    try {
      const data = JSON.parse(text) as LeaseFile;
      if (data.version !== 1 || typeof data.jails !== 'object') throw new Error('unexpected shape');
      for (const [name, r] of Object.entries(data.jails)) if (r.program === undefined) data.jails[name] = this.withPids(r);
      return data;
    } catch (cause) {
      if (!this.tornBeforeBoot()) throw new JailError('JAIL_STATE_CORRUPT', `the lease file ${this.file} is not a valid lease store`, { cause, context: { file: this.file } });
      if (setAside) renameSync(this.file, `${this.file}.torn-${new Date().toISOString().replace(/[:.]/g, '-')}`);
      return { version: 1, jails: {} };
    }
  }

  /**
   * Whether an unreadable lease file can name nothing alive: it was written before this boot
   * (a power loss or kernel crash can tear a file renamed in without an fsync; in this boot
   * it is never torn, the page cache outlives any manager's crash) and no jail cgroup under
   * the jails' parent holds a process. Every process, cgroup and use of a leased id that its
   * records named died with the host then.
   */
  private tornBeforeBoot(): boolean {
    let mtimeMs: number;
    let bootMs: number;
    try {
      mtimeMs = statSync(this.file).mtimeMs;
      bootMs = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]) * 1000;
    } catch { return false; }
    return Number.isFinite(bootMs) && mtimeMs < bootMs && liveJailLeaf(this.config) === undefined;
  }

  /**
   * Write to a temporary name and rename it in, under the lock: readers see the old file or
   * the new one, never half of one. No fsync: the records need atomic visibility, not
   * durability. A manager that dies (SIGKILL included) loses no page-cache write; only a
   * power loss or kernel crash does, and after one nothing a record names exists any more
   * (its processes, cgroups, the uid's use by live processes): every record is stale, its uid
   * free at once, whether the record survived or not. A file torn by one is set aside (read).
   */
  private write(data: LeaseFile): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(data, null, 2), { mode: 0o600 });
    // Exchanged in, the old file unlinked: on ext4 a rename over an existing file first starts
    // writeback of the new one's data (auto_da_alloc: 0.5-3 ms here), an exchange does not.
    // Readers see the old file or the new one either way.
    const exchange = optionalNative()?.renameExchange;
    if (exchange !== undefined) {
      try { exchange(tmp, this.file); } catch { renameSync(tmp, this.file); return; } // no file yet, or a filesystem without exchange
      try { unlinkSync(tmp); } catch { /* the old records under this process's tmp name: the next write truncates it */ }
      return;
    }
    renameSync(tmp, this.file);
  }

  private async locked<T>(fn: (data: LeaseFile) => Promise<T>): Promise<T> {
    mkdirSync(this.config.stateDir, { recursive: true, mode: 0o700 });
    await this.takeLock();
    try {
      const data = await this.read(true);
      const result = await fn(data);
      this.write(data);
      return result;
    } finally {
      try { unlinkSync(this.lock); } catch { /* broken by someone who thought us dead */ }
    }
  }

  /** An O_EXCL lock file naming its holder; a lock whose holder is dead is broken. */
  private async takeLock(timeoutMs = 10000): Promise<void> {
    const me = processId(process.pid) ?? { pid: process.pid, start: '?' };
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try { writeFileSync(this.lock, JSON.stringify(me), { flag: 'wx', mode: 0o600 }); return; } catch (e) {
        if (errno(e) !== 'EEXIST') throw e;
      }
      await this.breakStaleLock();
      if (Date.now() > deadline) throw new JailError('JAIL_LOCK_TIMEOUT', `the lease lock ${this.lock} stayed held for ${timeoutMs} ms`, { context: { lock: this.lock } });
      await sleep(2 + Math.random() * 5);
    }
  }

  private async breakStaleLock(): Promise<void> {
    const text = await fsp.readFile(this.lock, 'utf8').catch(() => undefined);
    if (text === undefined) return;
    let holder: ProcessId | undefined;
    try { holder = JSON.parse(text) as ProcessId; } catch { holder = undefined; }
    // A lock being written right now parses as nothing: break it only once it is clearly abandoned.
    if (holder === undefined) {
      const age = await fsp.stat(this.lock).then((st) => Date.now() - st.mtimeMs, () => 0);
      if (age < 5000) return;
    } else if (isAlive(holder)) return;
    // Rename first, so two breakers cannot both unlink; only the one that got the stale file removes it.
    const aside = `${this.lock}.stale-${process.pid}`;
    try { await fsp.rename(this.lock, aside); } catch { return; }
    const moved = await fsp.readFile(aside, 'utf8').catch(() => '');
    if (moved === text) { await fsp.unlink(aside).catch(() => undefined); return; }
    // We moved a fresh lock by mistake: put it back unless someone took the name meanwhile.
    await fsp.link(aside, this.lock).catch(() => undefined);
    await fsp.unlink(aside).catch(() => undefined);
  }
}

/**
 * A jail cgroup leaf under the jails' parent (any hierarchy) that holds a process, or undefined
 * when none does. A cgroup tree that cannot be read counts as alive (the caller then refuses).
 */
function liveJailLeaf(config: JailerConfig): string | undefined {
  try {
    const v2 = (m: string): string[] => { try { return readFileSync(join(m, 'cgroup.controllers'), 'utf8').trim().split(/\s+/); } catch { return []; } };
    const layout = parseCgroupLayout(readFileSync(config.mountsFile, 'utf8'), v2, config.cgroupVersion);
    if (layout === undefined) return undefined; // no cgroup hierarchy: no jail can run here either
    for (const root of layout.version === 1 ? new Set(Object.values(layout.mounts)) : [layout.mount]) {
      const parent = join(root, config.cgroupParent);
      let leaves: string[];
      try { leaves = readdirSync(parent, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(parent, e.name)); } catch (e) {
        if (errno(e) === 'ENOENT') continue;
        throw e;
      }
      for (const leaf of leaves) if (readFileSync(join(leaf, 'cgroup.procs'), 'utf8').trim() !== '') return leaf;
    }
    return undefined;
  } catch {
    return config.mountsFile;
  }
}
