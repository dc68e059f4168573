/**
 * @module shim/netns: a VM NIC joined to a pod's network namespace (the CNI-made netns a
 * bundle names), as Kata does it: warden creates the TAP on the host and keeps its fd; the
 * TAP then moves into the netns and is bridged there with the pod's interface. Done as a
 * wrapper of warden's network port, so it happens before QEMU exists and is undone from
 * the VM's record by any process (the server, or `delete` after the server died).
 * Convention: in such a bundle, a NIC `type: bridge` with `bridge: pod` is the pod's.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { closeSync, statSync } from 'node:fs';
import type { HostAction } from '../net/index.js';
import type { ProcessRunner } from '../sys/index.js';
import type { Backends } from '../vm/index.js';
import { ShimError } from './errors.js';

/** The `bridge` value that means "the pod's interface" in a bundle with a network namespace. */
export const POD_BRIDGE = 'pod';

type NetPort = Backends['net'];

interface PodLog {
  shimNetns: { netns: string; taps: string[]; bridge: string };
  inner: unknown;
}

function isPodLog(x: unknown): x is PodLog {
  return typeof x === 'object' && x !== null && 'shimNetns' in x;
}

export interface NetnsPort {
  /** Marks VM `vm` as joining `netns` (before it starts). */
  register(vm: string, netns: string): void;
  forget(vm: string): void;
}

/** In-netns bridge name for VM `vm` (one per VM; 14 characters like warden's own devices). */
export function podBridgeName(vm: string): string {
  return `wp${createHash('sha256').update(vm).digest('hex').slice(0, 12)}`;
}

export function podNetwork(runner: ProcessRunner, inner: NetPort): { net: NetPort; port: NetnsPort } {
  const joined = new Map<string, string>();
  const ip = async (netns: string | null, args: string[], tolerate = false): Promise<string> => {
    const argv = netns === null ? ['ip', ...args] : ['nsenter', `--net=${netns}`, '--', 'ip', ...args];
    const r = await runner.run(argv, { timeoutMs: 30_000 });
    if (r.code !== 0 && !tolerate) throw new ShimError('SHIM_IO', `${argv.join(' ')} failed (exit ${String(r.code)})`, { context: { argv, stderr: r.stderr.trim() } });
    return r.stdout;
  };
  const net: NetPort = {
    async apply(vm, actions, record) {
      const netns = joined.get(vm);
      if (netns === undefined) return inner.apply(vm, actions, record);
      const pod = new Set(actions.flatMap((a) => (a.kind === 'bridge-attach' && a.bridge === POD_BRIDGE ? [a.ifname] : [])));
      const rest = actions.filter((a) => !(a.kind === 'bridge-attach' && pod.has(a.ifname)));
      let innerLog: unknown = null;
      const fds = await inner.apply(vm, rest, async (log) => { innerLog = log; await record(log); });
      const taps = rest.flatMap((a: HostAction) => (a.kind === 'tap' && pod.has(a.ifname) ? [a.ifname] : []));
      if (taps.length === 0) return fds;
      const bridge = podBridgeName(vm);
      await record({ shimNetns: { netns, taps, bridge }, inner: innerLog } satisfies PodLog); // before the change: undo knows where to look
      try {
        const podIf = await podInterface(ip, netns);
        for (const tap of taps) await moveInto(ip, tap, netns);
        await ip(netns, ['link', 'add', bridge, 'type', 'bridge']);
        await ip(netns, ['link', 'set', 'dev', podIf, 'master', bridge, 'up']);
        for (const tap of taps) await ip(netns, ['link', 'set', 'dev', tap, 'master', bridge, 'up']);
        await ip(netns, ['link', 'set', 'dev', bridge, 'up']);
      } catch (err) {
        for (const fd of fds.values()) { try { closeSync(fd); } catch { /* closed */ } }
        throw err;
      }
      return fds;
    },
    async undo(log) {
      if (!isPodLog(log)) return inner.undo(log);
      const { netns, taps, bridge } = log.shimNetns;
      await ip(netns, ['link', 'delete', bridge], true);
      for (const tap of taps) await ip(netns, ['link', 'delete', tap], true);
      if (log.inner !== null) await inner.undo(log.inner);
    },
  };
  return { net, port: { register: (vm, netns) => joined.set(vm, netns), forget: (vm) => joined.delete(vm) } };
}

/** The pod's interface in the netns: eth0 if there is one, else its only device besides lo. */
async function podInterface(ip: (ns: string | null, a: string[]) => Promise<string>, netns: string): Promise<string> {
  const links = (JSON.parse(await ip(netns, ['-j', 'link', 'show'])) as Array<{ ifname: string; link_type?: string }>)
    .map((l) => l.ifname).filter((n) => n !== 'lo');
  if (links.includes('eth0')) return 'eth0';
  if (links.length === 1) return links[0]!;
  throw new ShimError('SHIM_BAD_BUNDLE', `network namespace ${netns} has no eth0 and ${links.length} other devices: which is the pod's is unclear`, { context: { netns, links } });
}

/** `ip link set TAP netns X` takes a name under /run/netns or a pid: any other path is entered by a short-lived process. */
async function moveInto(ip: (ns: string | null, a: string[]) => Promise<string>, tap: string, netns: string): Promise<void> {
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  if (named !== null) { await ip(null, ['link', 'set', 'dev', tap, 'netns', named[1]!]); return; }
  const holder = spawn('nsenter', [`--net=${netns}`, '--', 'sleep', '60'], { stdio: 'ignore' });
  try {
    // Only once the holder is inside: before its setns, its pid names the host's netns.
    const want = statSync(netns).ino;
    for (let i = 0; ; i++) {
      let ino = -1;
      try { ino = statSync(`/proc/${holder.pid}/ns/net`).ino; } catch { /* not yet */ }
      if (ino === want) break;
      if (i >= 200) throw new ShimError('SHIM_IO', `a process could not enter the network namespace ${netns}`, { context: { netns } });
      await new Promise((r) => setTimeout(r, 25));
    }
    await ip(null, ['link', 'set', 'dev', tap, 'netns', String(holder.pid)]);
  } finally {
    holder.kill('SIGKILL');
  }
}
