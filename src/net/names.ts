/**
 * @module net/names: deterministic host device names, stable MACs and OVS external-ids
 * derived from (vm name, nic name). Pure: the planner may call these to fill HostActions,
 * and cleanup finds leftovers by the same names without any log.
 */
import { createHash } from 'node:crypto';

/** The default prefix of every host device qemu-warden creates. */
export const DEFAULT_IF_PREFIX = 'wd';
/**
 * Longest host device name we generate: IFNAMSIZ (16) minus the NUL is 15, and the
 * native addon's openTap refuses 15 to detect truncation, so 14.
 */
export const MAX_IFNAME = 14;
const NIC_HASH_LEN = 4;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

function base32(bytes: Uint8Array, chars: number): string {
  let out = '';
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5 && out.length < chars) {
      bits -= 5;
      out += BASE32[(acc >>> bits) & 31];
    }
    acc &= (1 << bits) - 1;
    if (out.length >= chars) break;
  }
  return out;
}

function digest(...parts: string[]): Buffer {
  return createHash('sha256').update(parts.join('\0')).digest();
}

function checkPrefix(prefix: string): void {
  if (!/^[a-z][a-z0-9]{0,3}$/.test(prefix)) {
    throw new RangeError(`interface prefix ${JSON.stringify(prefix)} must be 1-4 lowercase letters or digits, starting with a letter`);
  }
}

/**
 * The part of every device name that identifies the VM: prefix + base32(sha256(vm)).
 * All devices of one VM start with it, which is how cleanup finds them without a log.
 */
export function vmIfPrefix(vmName: string, prefix: string = DEFAULT_IF_PREFIX): string {
  checkPrefix(prefix);
  return prefix + base32(digest('vm', vmName), MAX_IFNAME - prefix.length - NIC_HASH_LEN);
}

/** The host device name of one NIC: always MAX_IFNAME bytes, e.g. `wdq3kf7ab2x9mp`. */
export function hostIfName(vmName: string, nicName: string, prefix: string = DEFAULT_IF_PREFIX): string {
  return vmIfPrefix(vmName, prefix) + base32(digest('nic', vmName, nicName), NIC_HASH_LEN);
}

/** True when `ifname` is a device name hostIfName could have produced for this VM. */
export function isVmIfName(ifname: string, vmName: string, prefix: string = DEFAULT_IF_PREFIX): boolean {
  return ifname.length === MAX_IFNAME && ifname.startsWith(vmIfPrefix(vmName, prefix));
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A locally stable guest MAC from (vm, nic) under QEMU's OUI 52:54:00 (or another unicast OUI). */
export function stableMac(vmName: string, nicName: string, oui = '52:54:00'): string {
  if (!/^[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/.test(oui) || (Number.parseInt(oui.slice(0, 2), 16) & 1) !== 0) {
    throw new RangeError(`OUI ${JSON.stringify(oui)} must be three lowercase hex octets of a unicast address`);
  }
  const d = digest('mac', vmName, nicName);
  return [oui, ...[0, 1, 2].map((i) => d[i]!.toString(16).padStart(2, '0'))].join(':');
}

/** Why a guest MAC is unusable, or undefined when it is fine. */
export function macProblem(mac: string): string | undefined {
  if (!MAC_RE.test(mac)) return 'must be six lowercase hex octets separated by colons';
  const first = Number.parseInt(mac.slice(0, 2), 16);
  if ((first & 1) !== 0) return 'is a multicast address';
  if (first === 0xfe) return 'starts with fe, which is reserved for the host side of TAP devices';
  if (mac === '00:00:00:00:00:00') return 'is all zeros';
  return undefined;
}

/**
 * The TAP's host-side MAC: the guest MAC with its first octet set to 0xfe, so a Linux
 * bridge never adopts it as its own address (libvirt does the same).
 */
export function hostSideMac(guestMac: string): string {
  return 'fe' + guestMac.slice(2);
}

/** The external-ids qemu-warden records on an OVS Interface; cleanup looks for `warden-vm`. */
export function ovsExternalIds(vmName: string, nicName: string, mac: string, ifaceId?: string): Record<string, string> {
  return {
    'attached-mac': mac,
    'iface-id': ifaceId ?? `${vmName}/${nicName}`,
    'iface-status': 'active',
    'warden-nic': nicName,
    'warden-vm': vmName,
  };
}
