/**
 * @module plan/helpers: the helper programs that serve QEMU's devices from outside QEMU,
 * each planned with QEMU and confined by the same generic jailer in a jail of its own:
 * passt for user networking (slirp stays out of QEMU), virtiofsd for shares (helpers-virtiofs.ts). The JailSpecs are complete here, so
 * `warden jail` can run any of them alone.
 */
import type { JailMount, JailSpec } from '../jail/index.js';
import type { ProgramView } from '../qemu/index.js';
import type { Network, Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts, PlannedFd } from './types.js';
import { hostWideName } from './scope.js';
import { sha256Hex } from '../sys/sha256.js';
import { planShares } from './helpers-virtiofs.js';
import { planTpm } from './helpers-tpm.js';

export const PASST_BINARY = '/usr/bin/passt';

/** The guest side of passt: slirp's defaults, so a guest set up for one works with the other. */
export const USER_NET = { guest: '10.0.2.15', prefixLength: 24, gateway: '10.0.2.2' } as const;

const MiB = 1024 * 1024;
/** passt's own needs: static packet buffers and flow tables (it reserves tens of MiB), a handful of threads. */
const PASST_LIMITS = { memoryBytes: 256 * MiB, pids: 16, nofile: 4096 };

/** A helper's jail name: "<vm>-<kind>-<item>", shortened with a hash when that would exceed 63 characters. */
export function helperJailName(vm: string, kind: string, item: string): string {
  const name = `${vm}-${kind}-${item}`;
  if (name.length <= 63) return name;
  return `${name.slice(0, 54)}-${sha256Hex(name).slice(0, 8)}`;
}

/** The program's view: host links, binary, loader and libraries, each bound read-only on its own. */
export function programMounts(view: ProgramView): JailMount[] {
  const seen = new Set<string>();
  const mounts: JailMount[] = view.links.map((l) => ({ type: 'symlink', linkTarget: l.linkTarget, path: l.path }));
  for (const f of [view.binary, ...view.libraries]) {
    if (seen.has(f.path)) continue;
    seen.add(f.path);
    mounts.push({ type: 'ro-bind', source: f.source, target: f.path });
  }
  return mounts;
}

/** The NIC's forwards with `host: 0` replaced by the port start chose (a fact); `warden plan` has none and shows 0. */
export function resolvedForwards(n: Network, from: string, facts: Facts): NonNullable<Network['forwards']> {
  return (n.forwards ?? []).map((f, k) => ({ ...f, host: f.host === 0 ? facts.forwardPorts?.[`${from}.forwards[${k}]`] ?? 0 : f.host }));
}

/** The manifest's word on a host: 0 forward. */
export function chosenNote(n: Network, k: number, host: number): string {
  if (n.forwards?.[k]?.host !== 0) return '';
  return host === 0 ? '; host port: a free one chosen at start' : '; a free port chosen at start';
}

/** passt's forwards: "-t ADDR/HOST:GUEST" per TCP forward, "-u ..." per UDP; none of a protocol is "none". */
function forwardArgs(fwd: NonNullable<Network['forwards']>): string[] {
  return (['tcp', 'udp'] as const).flatMap((proto) => {
    const flag = proto === 'tcp' ? '-t' : '-u';
    const mine = fwd.filter((f) => f.proto === proto);
    return mine.length === 0 ? [flag, 'none'] : mine.flatMap((f) => [flag, `${f.hostAddress}/${f.host}:${f.guest}`]);
  });
}

/**
 * A `type: user` NIC served by passt: QEMU gets one end of a socketpair (`-netdev stream`
 * on an fd), passt the other (`--fd 3`) in a jail with a leased uid of its own, no
 * capabilities and its own mount namespace, in the host's network namespace (its sockets
 * are the guest's way out, and its forwards listen there).
 */
export function planPasst(spec: Spec, n: Network, from: string, netdev: string, facts: Facts, b: PlanBuilder): void {
  const view = facts.helpers?.passt;
  if (view === undefined) {
    b.issue({ code: 'PLAN_MISSING_FACT', from, message: `user networking runs passt in a jail of its own, but passt is not installed on this host (${PASST_BINARY})`, suggestion: `install the passt package, or set networks[].backend: slirp on ${n.name} to run QEMU's built-in user networking inside QEMU` });
    return;
  }
  if (n.restrict === true) {
    b.issue({ code: 'PLAN_UNSUPPORTED', from: `${from}.restrict`, message: 'restrict is slirp\'s option; passt has no equivalent that keeps the forwards', suggestion: `set networks[].backend: slirp on ${n.name}, or drop restrict` });
    return;
  }
  const fwd = resolvedForwards(n, from, facts);
  const pair = `passt-${n.name}`;
  const qemuFd = b.socketPair(from, pair, pair);
  b.qapiArg(from, '-netdev', 'netdev_add', { type: 'stream', id: netdev, addr: { type: 'fd', str: String(qemuFd) } });
  const name = helperJailName(hostWideName(spec.name, facts.scope), 'passt', n.name);
  const fds: PlannedFd[] = [{ kind: 'socketpair', name: pair, pair, target: 3, from }];
  const jail: JailSpec = {
    name,
    identity: { lease: true },
    network: { mode: 'host' },
    mounts: programMounts(view),
    devices: [],
    fds: [{ name: pair, target: 3 }],
    cgroup: { name, memoryBytes: PASST_LIMITS.memoryBytes, pids: PASST_LIMITS.pids },
    rlimits: { nofile: PASST_LIMITS.nofile, core: 0 },
    env: {},
    cwd: '/',
    // -1: quit when QEMU's end closes. Foreground, errors only, on stderr (the VM's qemu.log).
    argv: [view.binary.path, '--foreground', '--quiet', '--stderr', '--one-off', '--fd', '3',
      '--address', USER_NET.guest, '--netmask', String(USER_NET.prefixLength), '--gateway', USER_NET.gateway, ...forwardArgs(fwd)],
    // passt sandboxes itself further (its own user, mount, ipc, uts namespaces, pivot_root to an empty
    // directory, seccomp); Landlock would forbid those mounts, so it is not layered here.
    nestedUserns: true,
  };
  b.helpers.push({ kind: 'passt', from, jail, fds });
  b.note('helper', name, 'runs', from, `passt (user networking) in its own jail: leased uid, no capabilities, own mount namespace, host network namespace for its sockets; guest ${USER_NET.guest}/${USER_NET.prefixLength}, gateway ${USER_NET.gateway} = the host's loopback; ${describe(jail)}`);
  b.note('socket', `socketpair ${pair}`, 'QEMU fd ' + qemuFd + ', passt fd 3', from, 'the guest\'s frames between QEMU (-netdev stream) and passt');
  for (const f of [view.binary, ...view.libraries]) b.note('mount', `${name}:${f.path}`, 'ro', from, f.path === view.binary.path ? 'the passt binary' : 'shared library of passt');
  fwd.forEach((f, k) => b.note('port', `${f.proto}/${f.hostAddress}:${f.host}`, 'listen (passt)', `${from}.forwards[${k}]`, `forwarded to guest port ${f.guest}${chosenNote(n, k, f.host)}`));
}

/** Helpers that serve devices other than NICs (planNetworks plans passt), in start order. */
export function planDeviceHelpers(spec: Spec, facts: Facts, b: PlanBuilder): void {
  planTpm(spec, facts, b);
  planShares(spec, facts, b);
}

function describe(j: JailSpec): string {
  return `memory ${j.cgroup?.memoryBytes} bytes, pids ${j.cgroup?.pids}`;
}
