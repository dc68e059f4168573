/** @module jail/argv: the pure JailSpec → helper/setpriv/bwrap argv builder (golden-tested); no I/O. */
import type { JailMount, JailSpec } from './spec.js';
import { HELPER_TARGET } from './paths.js';

/** Facts gathered before launch: the identity, tool paths, cgroup files to join and the fd layout. */
export interface JailArgvFacts {
  uid: number;
  gid: number;
  groups: number[];
  helperPath: string;
  setprivPath: string;
  bwrapPath: string;
  /** cgroup.procs files the helper writes its own pid into before anything else runs. */
  cgroupProcs: string[];
  /**
   * cgroup v1 tasks files the helper writes "0" into instead (itself; it has one thread):
   * the same join without the kernel's global threadgroup lock and its RCU grace period.
   */
  cgroupTasks?: string[];
  /** fd (in the launched process) bwrap writes JSON status lines to: child-pid, then exit-code. */
  statusFd: number;
  /** fd the inner helper reads the manager's "go" byte from, before the program starts. */
  gateFd: number;
  /** fd holding the program's real stderr; fd 2 carries setup errors to the manager until the go. */
  stderrFd: number;
  landlockRequired: boolean;
}

/** Device nodes every jail gets, as bwrap's own --dev would, but nothing else (no tty, ptmx, shm). */
export const BASE_DEVICES: readonly string[] = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom'];

function mountArgs(m: JailMount): string[] {
  switch (m.type) {
    case 'ro-bind': return ['--ro-bind', m.source, m.target];
    case 'bind': return ['--bind', m.source, m.target];
    case 'symlink': return ['--symlink', m.linkTarget, m.path];
    case 'tmpfs': return [...(m.sizeBytes === undefined ? [] : ['--size', String(m.sizeBytes)]), '--tmpfs', m.target];
    case 'dir': return ['--dir', m.target];
  }
}

/** Namespaces: all new; the user namespace is what lets bwrap run as the already-dropped uid. */
function namespaceArgs(spec: JailSpec): string[] {
  const args = ['--unshare-user', ...(spec.nestedUserns === true ? [] : ['--disable-userns']), '--unshare-ipc', '--unshare-pid', '--unshare-uts', '--unshare-cgroup'];
  if (spec.network.mode === 'none') args.push('--unshare-net');
  return args;
}

/** /proc, a /dev holding only the base and listed nodes (then read-only), a private /tmp, the helper. */
function viewArgs(spec: JailSpec, helperPath: string): string[] {
  const args = spec.mounts.flatMap(mountArgs);
  args.push('--proc', '/proc', '--tmpfs', '/dev');
  for (const dev of [...BASE_DEVICES, ...spec.devices.filter((d) => !BASE_DEVICES.includes(d))]) args.push('--dev-bind', dev, dev);
  for (const [name, target] of [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']] as const) {
    args.push('--symlink', target, `/dev/${name}`);
  }
  args.push('--remount-ro', '/dev');
  if (!spec.mounts.some((m) => m.type !== 'symlink' && m.target === '/tmp')) args.push('--tmpfs', '/tmp');
  args.push('--ro-bind', helperPath, HELPER_TARGET);
  return args;
}

/** The inner helper: gate, close every fd but 0-2 and the allowlist, rlimits, Landlock, exec. */
function innerArgs(spec: JailSpec, facts: JailArgvFacts): string[] {
  const args = [HELPER_TARGET, 'inner', '--keep', String(spec.fds.length), '--gate', String(facts.gateFd), '--stderr-fd', String(facts.stderrFd)];
  for (const [name, value] of Object.entries(spec.rlimits ?? {})) if (value !== undefined) args.push('--rlimit', `${name}=${value}`);
  if (spec.landlock !== undefined) {
    // The jailer's own /dev nodes and the listed devices must stay usable under Landlock.
    const rw = [...new Set([...spec.landlock.readWrite, '/dev/null', '/dev/zero', '/dev/full', ...spec.devices])];
    const ro = [...new Set([...spec.landlock.readOnly, '/dev/random', '/dev/urandom'])].filter((p) => !rw.includes(p));
    for (const p of ro) args.push('--ll-ro', p);
    for (const p of rw) args.push('--ll-rw', p);
    if (facts.landlockRequired) args.push('--ll-required');
  }
  return [...args, '--', ...spec.argv];
}

/**
 * The whole chain, run as root: helper pre (netns, cgroups) → setpriv (uid/gid, groups,
 * every capability set emptied, no_new_privs) → bwrap (namespaces, view, status) → helper
 * inner → the program. Dropping the uid before bwrap keeps bwrap out of its root mode,
 * where it would keep every capability unless told otherwise.
 */
export function buildJailArgv(spec: JailSpec, facts: JailArgvFacts): string[] {
  const pre = [facts.helperPath, 'pre'];
  for (const file of facts.cgroupProcs) pre.push('--cgroup-procs', file);
  for (const file of facts.cgroupTasks ?? []) pre.push('--cgroup-tasks', file);
  if (spec.network.mode === 'join') pre.push('--netns', spec.network.path);
  const setpriv = [facts.setprivPath, `--reuid=${facts.uid}`, `--regid=${facts.gid}`,
    facts.groups.length > 0 ? `--groups=${facts.groups.join(',')}` : '--clear-groups',
    '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--no-new-privs'];
  const bwrap = [facts.bwrapPath, ...namespaceArgs(spec), '--new-session', '--cap-drop', 'ALL',
    '--hostname', spec.name, '--json-status-fd', String(facts.statusFd),
    ...viewArgs(spec, facts.helperPath), '--chdir', spec.cwd, '--clearenv'];
  for (const [k, v] of Object.entries(spec.env)) bwrap.push('--setenv', k, v);
  return [...pre, '--', ...setpriv, '--', ...bwrap, '--', ...innerArgs(spec, facts)];
}
