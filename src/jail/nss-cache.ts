/**
 * @module jail/nss-cache: NSS answers for candidate ids, kept only while nothing they came from
 * can have changed: passwd and group resolved by `files` (and `systemd` with nothing to ask),
 * keyed by the identity of /etc/nsswitch.conf, /etc/passwd and /etc/group.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** An id's account name and group name (null: none), as NSS answered. */
export type NssAnswer = [user: string | null, group: string | null];

/**
 * Where nss-systemd finds users besides its fixed ones: varlink services (dynamic users,
 * machined's, homed's: they answer from memory, no file changes when they do) and drop-in
 * user records. While any exists, its answers are not cached.
 */
export const SYSTEMD_USERDB = ['run/systemd/userdb', 'etc/userdb', 'run/userdb', 'run/host/userdb', 'usr/local/lib/userdb', 'usr/lib/userdb'];

/** NSS sources whose answers for an id depend on files alone (systemd: while SYSTEMD_USERDB is absent). */
const FILE_SOURCES = new Set(['files', 'systemd']);

/**
 * A file changed less than this long before its stat is not trusted to key answers: ctime comes
 * from a coarse clock, so an in-place edit of the same size within that tick would leave the
 * identity unchanged ("racy", as git calls it). Such a lookup goes to NSS and is not kept.
 */
export const NSS_RACY_MS = 2000;

function identity(path: string, now: number, racyMs: number): string | undefined {
  try {
    const st = statSync(path);
    if (racyMs > 0 && now - st.ctimeMs < racyMs) return undefined;
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch { return undefined; }
}

/**
 * Whether the passwd and group lines of nsswitch.conf name only file-backed sources (no action
 * items, no sss/ldap/winbind/compat...), and which; undefined when they do not (or are absent).
 */
export function fileBackedSources(nsswitch: string): Set<string> | undefined {
  const used = new Set<string>();
  for (const db of ['passwd', 'group']) {
    const line = new RegExp(`^\\s*${db}\\s*:(.*)$`, 'm').exec(nsswitch.replace(/#.*$/gm, ''))?.[1];
    if (line === undefined) return undefined;
    const sources = line.trim().split(/\s+/).filter((s) => s !== '');
    if (sources.length === 0 || sources.some((s) => !FILE_SOURCES.has(s))) return undefined; // "[NOTFOUND=return]" is not a source either
    for (const s of sources) used.add(s);
  }
  return used;
}

/**
 * A key for everything the answers depend on, or undefined when they may change without a
 * file changing (a network or service source, or a systemd userdb source present), or when a
 * file changed too recently to tell (NSS_RACY_MS).
 */
export function nssCacheKey(root = '/', racyMs = NSS_RACY_MS): string | undefined {
  const now = Date.now();
  const files = ['etc/nsswitch.conf', 'etc/passwd', 'etc/group'].map((p) => identity(join(root, p), now, racyMs));
  if (files.some((f) => f === undefined)) return undefined;
  let sources: Set<string> | undefined;
  try { sources = fileBackedSources(readFileSync(join(root, 'etc/nsswitch.conf'), 'utf8')); } catch { return undefined; }
  if (sources === undefined) return undefined;
  if (sources.has('systemd') && SYSTEMD_USERDB.some((p) => existsSync(join(root, p)))) return undefined;
  return files.join('|');
}

/** Answers by id for one cache key; a new key empties it. */
export class NssCache {
  private key: string | undefined;
  private readonly answers = new Map<number, NssAnswer>();

  /** The cached answers for `ids` (those known), after checking `key`; undefined key: nothing is cached. */
  lookup(key: string | undefined, ids: readonly number[]): Map<number, NssAnswer> {
    if (key === undefined || key !== this.key) { this.answers.clear(); this.key = key; }
    return new Map(ids.flatMap((id) => { const a = this.answers.get(id); return a === undefined ? [] : [[id, a] as [number, NssAnswer]]; }));
  }

  /** Keeps answers got under `key`; a failed lookup ("?ERRNO") is never kept. */
  store(key: string | undefined, answers: ReadonlyMap<number, NssAnswer>): void {
    if (key === undefined || key !== this.key) return;
    for (const [id, a] of answers) if (!a.some((n) => n?.startsWith('?'))) this.answers.set(id, a);
  }
}
