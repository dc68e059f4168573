/**
 * @module jail/uid-check: whether a uid/gid of the lease range is really nobody's: not a
 * host account or group (NSS, through getent), not the owner of a live process, not the
 * owner of files in the jailer's state; and whether the configured range overlaps the
 * host's normal user range (/etc/login.defs) or another user's /etc/subuid, /etc/subgid.
 */
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, promises as fsp, readdirSync, readFileSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { loadNative, type NativeAddon } from '../sys/native.js';
import { NssCache, nssCacheKey, type NssAnswer } from './nss-cache.js';

export interface IdRange { first: number; count: number }

/** The name whose /etc/subuid and /etc/subgid entries reserve the range for the jailer (see docs/jail.md). */
export const RESERVED_FOR = 'warden';

/**
 * One overlap of the configured range with a range the host hands out. `active` is false for
 * a subuid/subgid entry while newuidmap/newgidmap (the setuid helpers that turn an entry into
 * a mapping) are not installed: the entry then grants its user nothing, yet.
 */
export interface RangeConflict { source: string; first: number; last: number; detail: string; active: boolean }

/** Which setuid id-mapping helpers exist (shadow's uidmap package). */
export interface IdMapHelpers { newuidmap: boolean; newgidmap: boolean }

/** UID_MIN..UID_MAX and GID_MIN..GID_MAX of login.defs (its defaults when unset). */
export function parseLoginDefs(text: string): { uid: [number, number]; gid: [number, number] } {
  const get = (key: string, dflt: number): number => {
    const m = new RegExp(`^\\s*${key}\\s+(\\d+)\\s*$`, 'm').exec(text);
    return m === null ? dflt : Number(m[1]);
  };
  return { uid: [get('UID_MIN', 1000), get('UID_MAX', 60000)], gid: [get('GID_MIN', 1000), get('GID_MAX', 60000)] };
}

/** name:first:count lines of /etc/subuid or /etc/subgid (names or numeric ids). */
export function parseSubIds(text: string): Array<{ name: string; first: number; count: number }> {
  return text.split('\n').flatMap((line) => {
    const m = /^([^:#\s][^:]*):(\d+):(\d+)\s*$/.exec(line.trim());
    return m === null ? [] : [{ name: m[1]!, first: Number(m[2]), count: Number(m[3]) }];
  });
}

const overlaps = (r: IdRange, first: number, last: number): boolean => r.first <= last && first <= r.first + r.count - 1;

/** Every overlap of `range` with the host's user ranges (pure; absent files are empty strings). */
export function rangeConflicts(range: IdRange, files: { loginDefs: string; subuid: string; subgid: string }, helpers: IdMapHelpers = { newuidmap: true, newgidmap: true }): RangeConflict[] {
  const out: RangeConflict[] = [];
  const defs = parseLoginDefs(files.loginDefs);
  for (const [kind, [lo, hi]] of [['UID', defs.uid], ['GID', defs.gid]] as const) {
    if (overlaps(range, lo, hi)) out.push({ source: '/etc/login.defs', first: lo, last: hi, detail: `${kind}_MIN..${kind}_MAX ${lo}-${hi}: useradd/groupadd hand these out`, active: true });
  }
  for (const [source, text, helper] of [['/etc/subuid', files.subuid, 'newuidmap'], ['/etc/subgid', files.subgid, 'newgidmap']] as const) {
    for (const e of parseSubIds(text)) {
      if (e.name === RESERVED_FOR || e.count === 0) continue;
      const last = e.first + e.count - 1;
      if (!overlaps(range, e.first, last)) continue;
      const active = helpers[helper];
      out.push({ source, first: e.first, last, active,
        detail: `${e.name}'s subordinate ids ${e.first}-${last}: ${active ? `with ${helper} that user's user namespaces map onto them` : `inactive while ${helper} is not installed, but uidmap would give them to that user`}` });
    }
  }
  return out;
}

/**
 * Reads login.defs, subuid and subgid under `root`, looks for newuidmap/newgidmap, and returns
 * the overlaps. Synchronous calls (three small files, a few existence checks): each is cheaper
 * than a trip through the thread pool, which every jail launch paid here.
 */
export async function readRangeConflicts(range: IdRange, root = '/'): Promise<RangeConflict[]> {
  const read = (p: string): string => { try { return readFileSync(join(root, p), 'utf8'); } catch { return ''; } };
  const has = (name: string): boolean => ['usr/bin', 'bin', 'usr/sbin', 'sbin', 'usr/local/bin'].some((dir) => existsSync(join(root, dir, name)));
  return rangeConflicts(range, { loginDefs: read('etc/login.defs'), subuid: read('etc/subuid'), subgid: read('etc/subgid') }, { newuidmap: has('newuidmap'), newgidmap: has('newgidmap') });
}

/** Why an id is taken on this host, or null: the lease store skips ids with a reason. */
export type IdInUse = (id: number) => Promise<string | null>;

/**
 * getent DATABASE ID1 ID2 ...: one process for a window of candidates (getent takes many keys,
 * prints the entries it finds and exits 2 when some are missing). Returns id → the entry's name,
 * keyed by the entry's own id field, so a missing key is simply absent.
 */
function getentMany(db: 'passwd' | 'group', ids: readonly number[]): Promise<Map<number, string>> {
  return new Promise((resolve) => {
    execFile('getent', [db, ...ids.map(String)], { timeout: 10_000, maxBuffer: 16 << 20 }, (_err, stdout) => {
      const found = new Map<number, string>();
      for (const line of (stdout ?? '').split('\n')) {
        const [name, , id] = line.split(':');
        if (name !== undefined && id !== undefined && /^\d+$/.test(id) && !found.has(Number(id))) found.set(Number(id), name);
      }
      resolve(found);
    });
  });
}

/** The addon when it loads (its optional calls may still be missing from an older build), else undefined: the callers fall back. */
function optionalNative(): NativeAddon | undefined {
  try { return loadNative(); } catch { return undefined; }
}

/**
 * id → account name and id → group name for a window of ids: in-process through the addon's
 * nssNames (NSS on the thread pool, no process), else two getent processes. A failed lookup
 * ("?ERRNO") counts as taken: an id NSS cannot vouch for is not handed out.
 */
async function askNss(ids: readonly number[]): Promise<Map<number, NssAnswer>> {
  const native = optionalNative();
  if (native?.nssNames === undefined) {
    const [users, groups] = await Promise.all([getentMany('passwd', ids), getentMany('group', ids)]);
    return new Map(ids.map((id) => [id, [users.get(id) ?? null, groups.get(id) ?? null]]));
  }
  const { users, groups } = await native.nssNames([...ids]);
  return new Map(ids.map((id, i) => [id, [users[i] ?? null, groups[i] ?? null]]));
}

/** This process's NSS answers, while their sources stay as they were (see nss-cache). */
const nssCache = new NssCache();

/**
 * The window's answers: from the cache where the passwd and group sources are files that have
 * not changed since (no thread-pool trip then), else asked (and kept when cacheable).
 */
async function nssWindow(ids: readonly number[]): Promise<[Map<number, string>, Map<number, string>]> {
  // Only the addon tells a failed lookup ("?ERRNO", never kept) from a missing entry; getent's answers are not kept.
  const key = optionalNative()?.nssNames === undefined ? undefined : nssCacheKey();
  const known = nssCache.lookup(key, ids);
  const missing = ids.filter((id) => !known.has(id));
  if (missing.length > 0) {
    const asked = await askNss(missing);
    nssCache.store(key, asked);
    for (const [id, a] of asked) known.set(id, a);
  }
  const pick = (k: 0 | 1): Map<number, string> => new Map([...known].flatMap(([id, a]) => (a[k] === null ? [] : [[id, a[k]!] as [number, string]])));
  return [pick(0), pick(1)];
}

const STATUS_IDS = { Uid: /^Uid:\s+(.*)$/m, Gid: /^Gid:\s+(.*)$/m } as const;

/**
 * A dead process: a zombie (or exiting, X) none of whose threads runs any more. It runs
 * nothing and holds nothing under its ids, so it does not keep an id from a lease (zombies
 * linger until their parent reaps them; here, bwrap's are reaped late by pid 1). A zombie
 * leader whose other threads still run counts them in Threads: and stays an owner.
 */
export function deadProcess(status: string): boolean {
  const state = /^State:\s+(\S)/m.exec(status)?.[1];
  return (state === 'Z' || state === 'X') && Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 2) <= 1;
}

/** Up to this many processes, the /proc scan runs on the calling thread (~3 ms at most). */
export const SYNC_SCAN_MAX = 1000;

/** uid → a pid, gid → a pid, for every live process's real, effective, saved and filesystem ids (status files read in parallel batches). */
async function processOwners(procRoot: string): Promise<{ uids: Map<number, number>; gids: Map<number, number> }> {
  const uids = new Map<number, number>();
  const gids = new Map<number, number>();
  const native = procRoot === '/proc' ? optionalNative() : undefined;
  if (native?.procIds !== undefined) {
    // The addon's one pass over /proc (~3 us a process): on this thread while the host has at
    // most SYNC_SCAN_MAX processes (cheaper than a thread-pool round trip on a busy host), else on the pool.
    const rows = native.procIdsSync?.(SYNC_SCAN_MAX) ?? await native.procIds();
    for (let i = 0; i + 9 <= rows.length; i += 9) {
      for (let k = 1; k <= 4; k++) if (!uids.has(rows[i + k]!)) uids.set(rows[i + k]!, rows[i]!);
      for (let k = 5; k <= 8; k++) if (!gids.has(rows[i + k]!)) gids.set(rows[i + k]!, rows[i]!);
    }
    return { uids, gids };
  }
  const pids = (await fsp.readdir(procRoot).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  for (let i = 0; i < pids.length; i += 256) {
    const batch = pids.slice(i, i + 256);
    const texts = await Promise.all(batch.map((p) => fsp.readFile(join(procRoot, p, 'status'), 'utf8').catch(() => '')));
    texts.forEach((status, j) => {
      if (deadProcess(status)) return;
      for (const [key, map] of [['Uid', uids], ['Gid', gids]] as const) {
        const m = STATUS_IDS[key].exec(status);
        for (const id of m?.[1]?.trim().split(/\s+/).map(Number) ?? []) if (!map.has(id)) map.set(id, Number(batch[j]));
      }
    });
  }
  return { uids, gids };
}

/**
 * Owners of the files below `dirs` (bounded: at most `limit` entries, symlinks not followed).
 * Synchronous: the jailer's state holds a few files per jail, and a thread-pool trip per entry
 * cost more than the lstat.
 */
async function fileOwners(dirs: readonly string[], limit = 20_000): Promise<Map<number, string>> {
  const owners = new Map<number, string>();
  const queue = [...dirs];
  let seen = 0;
  while (queue.length > 0 && seen < limit) {
    const dir = queue.shift()!;
    let entries: Dirent[] = [];
    try { entries = readdirSync(dir, { withFileTypes: true }); } catch { /* gone or unreadable: nothing below */ }
    for (const e of entries) {
      if (++seen > limit) break;
      const p = join(dir, e.name);
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (st === undefined) continue;
      if (!owners.has(st.uid)) owners.set(st.uid, p);
      if (!owners.has(st.gid)) owners.set(st.gid, p);
      if (e.isDirectory()) queue.push(p);
    }
  }
  return owners;
}

/** How many candidates the first NSS window asks about; each further window of the same acquire doubles, up to NSS_WINDOW_MAX. */
export const NSS_WINDOW = 8;
const NSS_WINDOW_MAX = 512;

/**
 * The host check for one acquire: the /proc and file scans run once per acquire, started at
 * the first candidate together with NSS, which is asked about a window of candidates at once
 * (NSS_WINDOW, doubling while a range is crowded), in-process (the addon) or by one getent per
 * database, never per candidate. An id is taken as a uid or a gid alike (a lease uses the same
 * number for both).
 */
export function hostIdProbe(o: { stateDirs: readonly string[]; procRoot?: string }): IdInUse {
  let procs: ReturnType<typeof processOwners> | undefined;
  let files: ReturnType<typeof fileOwners> | undefined;
  let size = NSS_WINDOW / 2;
  let window: { first: number; last: number; nss: Promise<[Map<number, string>, Map<number, string>]> } | undefined;
  return async (id) => {
    if (window === undefined || id < window.first || id > window.last) {
      size = Math.min(size * 2, NSS_WINDOW_MAX);
      const ids = Array.from({ length: size }, (_, i) => id + i).filter((n) => n <= 0xfffffffe); // (uid_t)-1 is no id
      window = { first: id, last: id + size - 1, nss: nssWindow(ids) };
    }
    procs ??= processOwners(o.procRoot ?? '/proc');
    files ??= fileOwners(o.stateDirs);
    const [users, groups] = await window.nss;
    const user = users.get(id);
    if (user?.startsWith('?')) return `uid ${id}: the NSS passwd lookup failed (${user.slice(1)}), so it is not handed out`;
    if (user !== undefined) return `uid ${id} is the host account "${user}" (NSS passwd)`;
    const group = groups.get(id);
    if (group?.startsWith('?')) return `gid ${id}: the NSS group lookup failed (${group.slice(1)}), so it is not handed out`;
    if (group !== undefined) return `gid ${id} is the host group "${group}" (NSS group)`;
    const p = await procs;
    const pid = p.uids.get(id) ?? p.gids.get(id);
    if (pid !== undefined) return `id ${id} owns the live process ${pid}`;
    const f = (await files).get(id);
    if (f !== undefined) return `id ${id} owns ${f}`;
    return null;
  };
}

/** Every id of the range taken on this host (NSS enumeration, processes, state files), for a host check. */
export async function rangeCollisions(range: IdRange, stateDirs: readonly string[], leased: ReadonlySet<number>): Promise<Array<{ id: number; why: string }>> {
  const out: Array<{ id: number; why: string }> = [];
  const last = range.first + range.count - 1;
  const inRange = (id: number): boolean => id >= range.first && id <= last;
  for (const db of ['passwd', 'group'] as const) {
    const text = await new Promise<string>((resolve) => { execFile('getent', [db], { timeout: 10_000, maxBuffer: 64 << 20 }, (_e, stdout) => resolve(stdout ?? '')); });
    for (const line of text.split('\n')) {
      const [name, , id] = line.split(':');
      if (id !== undefined && inRange(Number(id))) out.push({ id: Number(id), why: `${db === 'passwd' ? 'host account' : 'host group'} "${name}"` });
    }
  }
  const p = await processOwners('/proc');
  for (const [map, what] of [[p.uids, 'uid'], [p.gids, 'gid']] as const) {
    for (const [id, pid] of map) if (inRange(id) && !leased.has(id)) out.push({ id, why: `${what} of process ${pid}, which no lease accounts for` });
  }
  for (const [id, path] of await fileOwners(stateDirs)) if (inRange(id) && !leased.has(id)) out.push({ id, why: `owner of ${path}` });
  return out.sort((a, b) => a.id - b.id);
}
