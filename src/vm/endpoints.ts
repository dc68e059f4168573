/**
 * @module vm/endpoints: where a running VM's services are reached from the host: its
 * user-mode forwards as they run (host: 0 resolved to the port start chose), and the SSH
 * endpoint `warden ssh` connects to (a forward to guest port 22, else an address the guest
 * agent reported on a bridge).
 */
import type { Facts } from '../plan/index.js';
import type { Spec } from '../spec/index.js';
import type { ForwardInfo, VmRecord } from './record.js';

export type { ForwardInfo };

/** Every user-mode forward of the spec with the host port it runs on (the chosen one for host: 0). */
export function forwardsOf(spec: Pick<Spec, 'networks'>, facts: Pick<Facts, 'forwardPorts'>): ForwardInfo[] {
  return spec.networks.flatMap((n, i) => (n.type === 'user' ? n.forwards ?? [] : []).map((f, k) => ({
    network: n.name, proto: f.proto, hostAddress: f.hostAddress, guest: f.guest,
    host: f.host === 0 ? facts.forwardPorts?.[`networks[${i}].forwards[${k}]`] ?? 0 : f.host,
  })));
}

export interface Endpoint { host: string; port: number; via: 'forward' | 'guest-agent' }

/** A guest address the agent reported, with the NIC it is on. */
export interface GuestAddress { nic?: string; address: string; family: 'ipv4' | 'ipv6' }

/**
 * Where to reach the guest's port `guestPort` (22: SSH) from this host: a tcp forward to it
 * (a wildcard listen address is reached on loopback), else the first IPv4 address the guest
 * agent reported that is not loopback or slirp's (only bridged NICs are reachable). Null when
 * neither exists; the VM must be running for its forwards to count.
 */
export function sshEndpoint(rec: Pick<VmRecord, 'run'>, agentAddresses: readonly GuestAddress[] = [], guestPort = 22): Endpoint | null {
  const fwd = rec.run?.forwards?.find((f) => f.proto === 'tcp' && f.guest === guestPort && f.host !== 0);
  if (fwd !== undefined) return { host: fwd.hostAddress === '0.0.0.0' ? '127.0.0.1' : fwd.hostAddress, port: fwd.host, via: 'forward' };
  const addr = agentAddresses.find((a) => a.family === 'ipv4' && !a.address.startsWith('127.') && !a.address.startsWith('10.0.2.'));
  return addr === undefined ? null : { host: addr.address, port: guestPort, via: 'guest-agent' };
}
