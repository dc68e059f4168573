/**
 * @module vm/facts-shares: the host facts shared folders need: each share's directory
 * (canonical path, owner uid/gid, which the idmapped bind maps to virtiofsd's uid) and the
 * views of virtiofsd and unshare (virtiofsd runs as root of a user namespace of its own).
 */
import { promises as fsp } from 'node:fs';
import type { Owner } from '../image/index.js';
import { UNSHARE_BINARY, VIRTIOFSD_BINARY, type Facts } from '../plan/index.js';
import type { Spec } from '../spec/index.js';
import type { FactSources, HostIssue } from './facts.js';

type ShareFact = NonNullable<NonNullable<Facts['shares']>[number]>;

/** One share's directory, or the located issue that keeps it out. `owner` (a daemon VM's owner) may share only a directory of their own. */
async function shareFact(path: string, at: string, owner: Owner | null | undefined): Promise<ShareFact | HostIssue> {
  const fail = (message: string, suggestion: string): HostIssue => ({ from: `${at}.path`, code: 'SPEC_FILE', message, suggestion });
  let real: string;
  try {
    real = await fsp.realpath(path);
  } catch {
    return fail(`shared directory ${path} does not exist`, 'create it, or correct the path');
  }
  const st = await fsp.stat(real);
  if (!st.isDirectory()) return fail(`shared path ${path} is not a directory`, 'a share is a directory; share the one holding this file');
  if (owner !== null && owner !== undefined && owner.uid !== 0 && st.uid !== owner.uid) {
    return fail(`shared directory ${path} belongs to uid ${st.uid}, not to the VM's owner (uid ${owner.uid})`, 'share a directory you own: the helper gets its owner\'s rights in it');
  }
  return { path: real, uid: st.uid, gid: st.gid };
}

/** The facts for `spec.shares`; none without shares. Views of programs not installed are absent (the planner refuses, located). */
export async function shareFacts(spec: Spec, src: FactSources, owner: Owner | null | undefined): Promise<{ shares?: Facts['shares']; helpers: NonNullable<Facts['helpers']>; issues: HostIssue[] }> {
  if ((spec.shares ?? []).length === 0) return { helpers: {}, issues: [] };
  if (process.getuid?.() !== 0) {
    // Without root there is no jailer: virtiofsd would run unconfined, and no idmapped mount could lend it the directory.
    return { helpers: {}, issues: [{ from: 'shares', code: 'SPEC_FILE', message: 'shared folders need root: virtiofsd runs in a jail of its own with an idmapped view of the directory', suggestion: 'run warden as root, or remove shares' }] };
  }
  const [virtiofsd, unshare, found] = await Promise.all([src.programView(VIRTIOFSD_BINARY), src.programView(UNSHARE_BINARY),
    Promise.all((spec.shares ?? []).map((sh, i) => shareFact(sh.path, `shares[${i}]`, owner)))]);
  const issues = found.filter((f): f is HostIssue => 'from' in f);
  const shares = found.map((f) => ('from' in f ? null : f));
  return { shares, helpers: { ...(virtiofsd === null ? {} : { virtiofsd }), ...(unshare === null ? {} : { unshare }) }, issues };
}
