/** @module plan/jail: the JailSpec, derived from the same builder state as the argv so the two cannot drift apart. */
import { posix } from 'node:path';
import type { JailCgroup, JailMount, JailSpec } from '../jail/index.js';
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';
import { planQemuView } from './view.js';
import { hostWideName } from './scope.js';

const TMP: JailMount = { type: 'tmpfs', target: '/tmp', sizeBytes: 16 * 1024 * 1024 };

/** The fallback view when the binary's view facts are unknown: all of read-only /usr and the merged-/usr links. */
const BASE_MOUNTS: JailMount[] = [
  { type: 'ro-bind', source: '/usr', target: '/usr' },
  { type: 'symlink', linkTarget: 'usr/lib', path: '/lib' },
  { type: 'symlink', linkTarget: 'usr/lib64', path: '/lib64' },
  { type: 'symlink', linkTarget: 'usr/bin', path: '/bin' },
  { type: 'symlink', linkTarget: 'usr/sbin', path: '/sbin' },
  TMP,
];

const MiB = 1024 * 1024;
/** QEMU's own memory beside guest RAM (device emulation, block caches, firmware), and TCG's code cache. */
export const QEMU_OVERHEAD_BYTES = 512 * MiB;
export const TCG_TB_SIZE_MIB = 256;
/** Threads: vCPUs, the block thread pool (64 at most), I/O and RCU threads, with room to spare. */
export const DEFAULT_PIDS = 1024;

/**
 * The spec's limits, and defaults where it sets none: QEMU is not trusted, and a crafted
 * image or a guest can make it grow, so memory and threads are always bounded. CPU is
 * only limited when asked.
 */
export function limitsToCgroup(spec: Spec, accel: 'kvm' | 'tcg', scope?: string): JailCgroup {
  const cg: JailCgroup = { name: hostWideName(spec.name, scope) };
  const l = spec.limits;
  if (l?.cpu !== undefined) cg.cpu = { quotaUs: Math.round(l.cpu * 1000), periodUs: 100_000 };
  cg.memoryBytes = l?.memory ?? spec.memory + QEMU_OVERHEAD_BYTES + (accel === 'tcg' ? TCG_TB_SIZE_MIB * MiB : 0);
  cg.pids = l?.pids ?? DEFAULT_PIDS;
  return cg;
}

/**
 * Network namespace: an empty one unless a NIC uses slirp (passt runs outside QEMU). Slirp needs no host
 * device, but it reaches the outside through ordinary host sockets, and its host forwards
 * listen in QEMU's namespace: in an empty namespace the guest has no route and the
 * forwards are unreachable from the host. TAP fds work from any namespace.
 */
function networkMode(spec: Spec): JailSpec['network'] {
  return spec.networks.some((n) => n.type === 'user' && n.backend === 'slirp') ? { mode: 'host' } : { mode: 'none' };
}

/** The minimal view from the binary's view facts; without them, all of /usr (said so in the manifest). */
function planView(spec: Spec, facts: Facts, b: PlanBuilder, accel: 'kvm' | 'tcg'): { mounts: JailMount[]; readOnly: string[] } {
  const binary = facts.qemu.binary;
  if (facts.qemu.view !== undefined) {
    const v = planQemuView(spec, facts, b, accel, facts.qemu.view);
    return { mounts: [...v.mounts, TMP], readOnly: v.roots };
  }
  b.note('mount', '/usr', 'ro', '(base)', 'all of /usr: no view facts for this QEMU binary (its libraries and data files were not resolved)');
  const extra = binary.startsWith('/usr/') ? [] : [posix.normalize(binary)];
  return { mounts: [...BASE_MOUNTS, ...extra.map((p): JailMount => ({ type: 'ro-bind', source: p, target: p }))], readOnly: ['/usr', ...extra] };
}

export function planJail(spec: Spec, facts: Facts, b: PlanBuilder, accel: 'kvm' | 'tcg'): JailSpec {
  const view = planView(spec, facts, b, accel);
  const mounts = [...view.mounts];
  const cgroup = limitsToCgroup(spec, accel, facts.scope);
  const net = networkMode(spec);
  const id = facts.identity;
  if ('uid' in id) b.note('uid', `${id.uid}:${id.gid}`, 'run as', 'name', 'no capabilities, no_new_privs');
  else b.note('uid', `leased from ${id.lease.first}-${id.lease.last}`, 'run as', 'name', 'a uid/gid of its own, leased at launch (the run record names it); no capabilities, no_new_privs');
  const defaulted = [spec.limits?.memory === undefined && 'memory', spec.limits?.pids === undefined && 'pids'].filter(Boolean);
  b.note('cgroup', cgroup.name, 'create', spec.limits === undefined ? 'name' : 'limits', `${describeCgroup(cgroup)}${defaulted.length === 0 ? '' : ` (default ${defaulted.join(' and ')} limit)`}`);
  if (net.mode === 'none') b.note('netns', 'new empty network namespace', 'own', 'networks');
  return {
    name: hostWideName(spec.name, facts.scope),
    identity: 'uid' in id ? { uid: id.uid, gid: id.gid } : { lease: true },
    network: net,
    mounts,
    devices: accel === 'kvm' ? ['/dev/kvm'] : [],
    fds: b.fds.map((f) => ({ name: f.name, target: f.target })),
    cgroup,
    rlimits: { core: 0, nofile: 4096 },
    env: {},
    cwd: '/',
    argv: [...b.argv],
    // Everything else QEMU touches arrives as an fd; device nodes it opens by name are the exception.
    landlock: { readOnly: [...view.readOnly], readWrite: accel === 'kvm' ? ['/dev/kvm'] : [] },
  };
}

function describeCgroup(cg: JailCgroup): string {
  const parts: string[] = [];
  if (cg.cpu !== undefined) parts.push(`cpu ${cg.cpu.quotaUs}/${cg.cpu.periodUs}us`);
  if (cg.memoryBytes !== undefined) parts.push(`memory ${cg.memoryBytes} bytes`);
  if (cg.pids !== undefined) parts.push(`pids ${cg.pids}`);
  return parts.length === 0 ? 'accounting only, no limits' : parts.join(', ');
}
