/**
 * @module cli/commands/host-check: what `warden validate` can tell about a spec's host
 * networking before `start` tries it: a named Linux bridge or macvtap parent link that does
 * not exist here, a forwarded host port already taken. Warnings, not errors: a spec may be
 * validated on another host than it runs on (and a port may be freed meanwhile).
 */
import { createSocket } from 'node:dgram';
import { promises as fsp } from 'node:fs';
import { createServer } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { formatIssue, issueAt, type Spec, type SpecIssue } from '../../spec/index.js';
import type { LoadedSpec } from './spec-facts.js';

async function exists(path: string): Promise<boolean> {
  return fsp.access(path).then(() => true, () => false);
}

/** One located warning per network whose host device is missing (or is not what the NIC type needs). */
export async function hostNetworkWarnings(loaded: LoadedSpec, sysNet = '/sys/class/net'): Promise<SpecIssue[]> {
  const out: SpecIssue[] = [];
  const at = (path: string, message: string, suggestion?: string): void => {
    out.push(issueAt(loaded.text, loaded.file, path, 'HOST_NET', message, suggestion));
  };
  for (const [i, n] of (loaded.spec.networks as Spec['networks']).entries()) {
    const dev = n.type === 'macvtap' ? n.link : n.type === 'bridge' ? n.bridge : undefined;
    if (dev === undefined) continue;
    const field = `networks[${i}].${n.type === 'macvtap' ? 'link' : 'bridge'}`;
    if (!(await exists(`${sysNet}/${dev}`))) {
      at(field, `${n.type === 'macvtap' ? 'link' : 'Linux bridge'} ${dev} does not exist on this host: start would fail (${n.type === 'macvtap' ? 'NET_MACVTAP' : 'NET_BRIDGE_MISSING'})`,
        n.type === 'macvtap' ? 'name an existing interface (ip -br link)' : `create it: ip link add ${dev} type bridge && ip link set ${dev} up`);
    } else if (n.type === 'bridge' && !(await exists(`${sysNet}/${dev}/bridge`))) {
      at(field, `${dev} exists but is not a Linux bridge: start would fail (NET_NOT_A_BRIDGE)`, 'an Open vSwitch bridge takes type: ovs');
    }
  }
  for (const [i, n] of (loaded.spec.networks as Spec['networks']).entries()) {
    for (const [j, f] of (n.type === 'user' ? n.forwards ?? [] : []).entries()) {
      const err = await bindError(f.proto, f.hostAddress, f.host);
      if (err !== null) at(`networks[${i}].forwards[${j}].host`, `${f.proto} port ${f.hostAddress}:${f.host} cannot be bound on this host (${err}): QEMU would exit at start`, `free the port (ss -lnp 'sport = :${f.host}'), or forward another one`);
    }
  }
  return out;
}

interface TcpHandle { bind(address: string, port: number): number; listen(backlog: number): number; close(): void }
type TcpWrap = { TCP: new (type: number) => TcpHandle; constants: { SERVER: number } };

/**
 * The TCP check without node:net: libuv's TCP handle (what net.Server listens on) bound and
 * put in listen (where libuv reports a bind's EADDRINUSE), then closed: the same calls and
 * errno names as `listen({ exclusive: true })`, without loading net, cluster and child_process
 * (~3-4 ms of validate's CPU, issue 16). Undefined when the binding is not there (a later
 * Node) or its deprecation would be printed (--pending-deprecation): then node:net checks.
 */
export function tcpBindErrorSync(address: string, port: number): string | null | undefined {
  if (process.execArgv.includes('--pending-deprecation') || (process.env.NODE_OPTIONS ?? '').includes('--pending-deprecation')) return undefined;
  let wrap: TcpWrap;
  try { wrap = (process as unknown as { binding(name: string): TcpWrap }).binding('tcp_wrap'); } catch { return undefined; }
  if (typeof wrap?.TCP !== 'function' || typeof wrap.constants?.SERVER !== 'number') return undefined;
  const h = new wrap.TCP(wrap.constants.SERVER);
  try {
    let err = h.bind(address, port);
    if (err === 0) err = h.listen(511);
    return err === 0 ? null : getSystemErrorName(err);
  } finally {
    h.close();
  }
}

/** Binds the port for a moment: null when it could be had, else the errno. */
function bindError(proto: 'tcp' | 'udp', address: string, port: number): Promise<string | null> {
  if (proto === 'tcp') {
    const sync = tcpBindErrorSync(address, port);
    if (sync !== undefined) return Promise.resolve(sync);
  }
  return netBindError(proto, address, port);
}

/** bindError through node:net and node:dgram (the TCP check's fallback, and its reference in the tests). */
export function netBindError(proto: 'tcp' | 'udp', address: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const fail = (e: NodeJS.ErrnoException): void => resolve(e.code ?? e.message);
    if (proto === 'udp') {
      const s = createSocket('udp4');
      s.once('error', (e) => { s.close(); fail(e); });
      s.bind(port, address, () => s.close(() => resolve(null)));
    } else {
      const s = createServer();
      s.once('error', fail);
      s.listen({ port, host: address, exclusive: true }, () => s.close(() => resolve(null)));
    }
  });
}

export function formatWarning(i: SpecIssue): string {
  return `warning: ${formatIssue(i)}`;
}
