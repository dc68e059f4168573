/**
 * @module vm/outside: how a running QEMU looks from the host: its uid, effective
 * capabilities, no_new_privs, seccomp mode, which namespaces differ from the manager's,
 * and every file it holds open. inspect shows it; the tests assert it.
 */
import { readdirSync, readlinkSync } from 'node:fs';
import type { Fs } from '../sys/index.js';
import { procStatus } from './proc.js';

export interface OutsideView {
  pid: number;
  uid: number;
  gid: number;
  capEff: string;
  noNewPrivs: boolean;
  /** 0 none, 1 strict, 2 filter. */
  seccomp: number;
  /** Namespaces (mnt, pid, net, ipc, uts, user, cgroup) that are not the manager's. */
  ownNamespaces: string[];
  /** fd number → what it points at (paths, socket:[ino], anon_inode:..., pipe:[ino]). */
  fds: Record<string, string>;
}

const NAMESPACES = ['mnt', 'pid', 'net', 'ipc', 'uts', 'user', 'cgroup'];

function link(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

export async function outsideView(fs: Fs, pid: number): Promise<OutsideView | null> {
  const st = await procStatus(fs, pid);
  if (st === null) return null;
  const ownNamespaces = NAMESPACES.filter((ns) => {
    const theirs = link(`/proc/${pid}/ns/${ns}`);
    return theirs !== null && theirs !== link(`/proc/self/ns/${ns}`);
  });
  const fds: Record<string, string> = {};
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) fds[fd] = link(`/proc/${pid}/fd/${fd}`) ?? '?';
  } catch { /* the process is gone or not ours to read */ }
  return {
    pid,
    uid: Number((st['Uid'] ?? '-1').split(/\s+/)[0]),
    gid: Number((st['Gid'] ?? '-1').split(/\s+/)[0]),
    capEff: st['CapEff'] ?? '?',
    noNewPrivs: st['NoNewPrivs'] === '1',
    seccomp: Number(st['Seccomp'] ?? '-1'),
    ownNamespaces,
    fds,
  };
}

/** Open files that are host paths (not sockets, pipes, anonymous inodes or /dev nodes of the jail). */
export function hostPathsOpen(view: OutsideView): string[] {
  // A memfd (a sealed boot-file copy) reads as "/memfd:NAME (deleted)" but lies on no path.
  return Object.values(view.fds).filter((t) => t.startsWith('/') && !t.startsWith('/memfd:'));
}
