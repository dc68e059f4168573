/**
 * @module plan/helpers-virtiofs: shared folders (spec `shares`): each share is served by
 * virtiofsd in a jail of its own that sees only its binary, libraries and that one directory,
 * bound idmapped (the directory's owner appears as the jail's leased uid), read-only for a
 * readonly share. QEMU gets a vhost-user-fs-pci device on a socket fd and shares guest memory.
 */
import type { JailMount, JailSpec } from '../jail/index.js';
import type { Share, Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import { helperJailName, programMounts } from './helpers.js';
import { hostWideName } from './scope.js';
import type { ProgramView } from '../qemu/index.js';
import type { Facts } from './types.js';

/** QEMU 7.2's C virtiofsd as Debian's qemu-system-common installs it. */
export const VIRTIOFSD_BINARY = '/usr/lib/qemu/virtiofsd';
/** util-linux unshare: virtiofsd starts as root of a user namespace of its own (`--map-root-user`). */
export const UNSHARE_BINARY = '/usr/bin/unshare';
/** Where the share appears in virtiofsd's view. */
export const SHARE_TARGET = '/share';
/** The memory backend shared with virtiofsd (vhost-user maps guest memory from its fds). */
export const SHARED_MEMORY_ID = 'mem-shared';

const MiB = 1024 * 1024;
/** virtiofsd's needs: a queue thread, a few workers, one O_PATH fd per inode the guest looks up. */
const VIRTIOFSD_LIMITS = { memoryBytes: 256 * MiB, pids: 32, nofile: 8192 };

/**
 * Guest memory in a memfd QEMU shares (vhost-user devices map it): returns the -machine
 * property that selects it, or nothing without shares.
 */
export function planSharedMemory(spec: Spec, b: PlanBuilder): string[] {
  if ((spec.shares ?? []).length === 0) return [];
  b.qapiArg('shares', '-object', 'object-add', { 'qom-type': 'memory-backend-memfd', id: SHARED_MEMORY_ID, size: spec.memory, share: true });
  b.note('file', 'memfd guest memory', 'shared with virtiofsd', 'shares', `guest memory (${spec.memory} bytes) in a memfd; each virtiofsd maps it to serve the guest's requests`);
  return [`memory-backend=${SHARED_MEMORY_ID}`];
}

/** Mounts without repeats (both programs need libc, the loader and the /lib links). */
function uniqueMounts(mounts: JailMount[]): JailMount[] {
  const seen = new Set<string>();
  return mounts.filter((m) => { const k = JSON.stringify(m); if (seen.has(k)) return false; seen.add(k); return true; });
}

/** Every share: its vhost-user-fs-pci device on QEMU's end of the socket, its virtiofsd jail. */
export function planShares(spec: Spec, facts: Facts, b: PlanBuilder): void {
  (spec.shares ?? []).forEach((sh, i) => planShare(spec, sh, `shares[${i}]`, i, facts, b));
}

type Dir = NonNullable<NonNullable<Facts['shares']>[number]>;

function planShare(spec: Spec, sh: Share, from: string, index: number, facts: Facts, b: PlanBuilder): void {
  const virtiofsd = facts.helpers?.virtiofsd;
  const unshare = facts.helpers?.unshare;
  if (virtiofsd === undefined || unshare === undefined) {
    const missing = virtiofsd === undefined ? `virtiofsd (${VIRTIOFSD_BINARY})` : `unshare (${UNSHARE_BINARY})`;
    b.issue({ code: 'PLAN_MISSING_FACT', from, message: `shared folders run virtiofsd in a jail of its own, but ${missing} is not installed on this host`, suggestion: 'install the qemu-system-common and util-linux packages' });
    return;
  }
  const dir = facts.shares?.[index];
  if (dir === undefined || dir === null) return; // located host issue already reported (or plan offline without facts)
  const id = `fs-${sh.name}`;
  const pair = `virtiofs-${sh.name}`;
  const qemuFd = b.socketPair(from, pair, pair);
  b.arg(from, '-chardev', `socket,id=${id},fd=${qemuFd}`);
  b.device(from, { driver: 'vhost-user-fs-pci', id, chardev: id, tag: sh.name, 'queue-size': 1024, ...b.pci(from) });
  const name = helperJailName(hostWideName(spec.name, facts.scope), 'virtiofs', sh.name);
  const jail = virtiofsdJail(name, pair, sh, dir, virtiofsd, unshare);
  b.helpers.push({ kind: 'virtiofsd', from, jail, fds: [{ kind: 'socketpair', name: pair, pair, target: 3, from, helperListens: true }] });
  b.note('helper', name, 'runs', from, `virtiofsd (shared folder "${sh.name}") in its own jail: leased uid, no capabilities on the host (root only of its own user namespace), own mount namespace seeing only virtiofsd, unshare, their libraries and ${dir.path}; no network; memory ${VIRTIOFSD_LIMITS.memoryBytes} bytes, pids ${VIRTIOFSD_LIMITS.pids}`);
  b.note('mount', `${name}:${SHARE_TARGET}`, sh.readonly ? 'ro' : 'rw', `${from}.path`, `${dir.path}, idmapped: files of uid ${dir.uid}/gid ${dir.gid} appear as the helper's leased uid; nosuid, nodev${sh.readonly ? ', read-only' : ''}`);
  const files = new Map([virtiofsd, unshare].flatMap((v) => [v.binary, ...v.libraries].map((f) => [f.path, f.path === v.binary.path] as const)));
  for (const [path, binary] of files) b.note('mount', `${name}:${path}`, 'ro', from, binary ? `the ${path.split('/').pop()} binary` : 'shared library');
  b.note('socket', `vhost-user ${pair}`, `QEMU fd ${qemuFd}, virtiofsd fd 3 (listening)`, from, `vhost-user-fs between QEMU and virtiofsd; guest: mount -t virtiofs ${sh.name} /mnt`);
}

/** virtiofsd's JailSpec: its view (the two programs, their libraries, the idmapped share), fd 3 listening, no network. */
function virtiofsdJail(name: string, pair: string, sh: Share, dir: Dir, virtiofsd: ProgramView, unshare: ProgramView): JailSpec {
  const share: JailMount = { type: sh.readonly ? 'ro-bind' : 'bind', source: dir.path, target: SHARE_TARGET, idmap: { uid: dir.uid, gid: dir.gid } };
  return {
    name,
    identity: { lease: true },
    network: { mode: 'none' },
    mounts: [...uniqueMounts([...programMounts(virtiofsd), ...programMounts(unshare)]), share],
    devices: [],
    fds: [{ name: pair, target: 3 }],
    cgroup: { name, memoryBytes: VIRTIOFSD_LIMITS.memoryBytes, pids: VIRTIOFSD_LIMITS.pids },
    rlimits: { nofile: VIRTIOFSD_LIMITS.nofile, core: 0 },
    env: {},
    cwd: '/',
    // fd 3 listens with QEMU's connection already queued. chroot sandbox: the jail already gave it its own
    // mount namespace; --rlimit-nofile=0 keeps the jail's limit (raising it needs host capabilities).
    argv: [unshare.binary.path, '--map-root-user', virtiofsd.binary.path, '--fd=3', '-o', `source=${SHARE_TARGET}`, '-o', 'sandbox=chroot',
      '-o', 'cache=auto', '-o', 'log_level=warn', '--rlimit-nofile=0'],
    // virtiofsd changes credentials per request, chroots and installs seccomp: root of a user namespace of its own.
    nestedUserns: true,
  };
}
