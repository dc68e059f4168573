/**
 * @module net/actions: the host network actions, data only. The planner produces them,
 * src/net performs them (recording each in an undo log) and undoes them.
 */

export type MacvtapMode = 'bridge' | 'vepa' | 'private' | 'passthru';

export type HostAction =
  /** Create a TAP device with TUNSETIFF and keep its fds (one per queue), named fdNames[i] for the jail. */
  | { kind: 'tap'; nic: string; ifname: string; queues: number; vnetHdr: boolean; mac: string; fdNames: string[]; mtu?: number }
  /** Attach an existing device to an existing Linux bridge and bring it up (a missing bridge is an error). */
  | { kind: 'bridge-attach'; nic: string; ifname: string; bridge: string }
  /** Add a device as a port of an Open vSwitch bridge, with the VM recorded in external-ids and an optional VLAN tag. */
  | { kind: 'ovs-attach'; nic: string; ifname: string; bridge: string; vlan?: number; externalIds: Record<string, string> }
  /** Create a macvtap on `link`, then open /dev/tapN (one fd per queue). */
  | { kind: 'macvtap'; nic: string; ifname: string; link: string; mode: MacvtapMode; mac: string; queues: number; fdNames: string[] }
  /** Open /dev/vhost-net once per queue, where the host has it. */
  | { kind: 'vhost'; nic: string; fdNames: string[] };
