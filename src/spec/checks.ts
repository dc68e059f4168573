/** @module spec/checks: cross-field rules the schema cannot state (duplicates, options that belong to one type, conflicts). */
import type { Disk, Network, Spec } from './schema.js';
import type { PathSeg } from './locate.js';
import { formatSize } from './units.js';

export interface RawIssue {
  code: string;
  path: PathSeg[];
  message: string;
  suggestion?: string;
  /** Point at the key rather than the value. */
  atKey?: boolean;
}

/** Every cross-field problem of a schema-valid spec. */
export function checkSpec(spec: Spec): RawIssue[] {
  return [
    ...duplicates(spec.disks.map((d) => d.name), 'disks', 'name', 'disk name'),
    ...duplicates(spec.networks.map((n) => n.name), 'networks', 'name', 'network name'),
    ...duplicates(spec.networks.map((n) => n.mac), 'networks', 'mac', 'MAC address'),
    ...duplicates(spec.disks.map((d) => d.bootIndex), 'disks', 'bootIndex', 'boot index'),
    ...duplicateForwards(spec),
    ...duplicates((spec.shares ?? []).map((sh) => sh.name), 'shares', 'name', 'share name'),
    ...spec.disks.flatMap((d, i) => checkDisk(d, i)),
    ...spec.networks.flatMap((n, i) => checkNetwork(n, i)),
    ...checkLimits(spec),
    ...checkSata(spec),
    ...checkSecureBoot(spec),
  ];
}

/** Secure boot is UEFI's, and OVMF's secure-boot build needs SMM, which QEMU has on q35 only. */
function checkSecureBoot(spec: Spec): RawIssue[] {
  if (!spec.secureBoot) return [];
  if (spec.firmware !== 'uefi') return [{ code: 'SPEC_CONFLICT', path: ['secureBoot'], message: 'secureBoot needs firmware: uefi', suggestion: 'add firmware: uefi' }];
  if (spec.machine !== 'q35') return [{ code: 'SPEC_CONFLICT', path: ['secureBoot'], message: 'secureBoot needs machine: q35 (the secure-boot firmware runs in SMM)', suggestion: 'use machine: q35' }];
  return [];
}

function duplicates(values: readonly (string | number | undefined)[], list: string, field: string, what: string): RawIssue[] {
  const seen = new Map<string | number, number>();
  const out: RawIssue[] = [];
  values.forEach((v, i) => {
    if (v === undefined) return;
    const first = seen.get(v);
    if (first === undefined) { seen.set(v, i); return; }
    out.push({ code: 'SPEC_DUPLICATE', path: [list, i, field], message: `duplicate ${what} ${JSON.stringify(v)}, already used by ${list}[${first}]` });
  });
  return out;
}

/** Two forwards of the same protocol on the same host address and port cannot both listen. */
function duplicateForwards(spec: Spec): RawIssue[] {
  const seen = new Map<string, string>();
  const out: RawIssue[] = [];
  spec.networks.forEach((n, i) => (n.forwards ?? []).forEach((f, k) => {
    if (f.host === 0) return; // each gets a port of its own at start
    const key = `${f.proto}/${f.hostAddress}:${f.host}`;
    const here = `networks[${i}].forwards[${k}]`;
    const first = seen.get(key);
    if (first === undefined) { seen.set(key, here); return; }
    out.push({ code: 'SPEC_DUPLICATE', path: ['networks', i, 'forwards', k, 'host'], message: `host port ${key} is forwarded twice, first by ${first}` });
  }));
  return out;
}

function checkDisk(d: Disk, i: number): RawIssue[] {
  const out: RawIssue[] = [];
  if (d.media === 'cdrom' && d.bus === 'virtio') {
    out.push({ code: 'SPEC_CONFLICT', path: ['disks', i, 'bus'], message: 'a cdrom cannot sit on the virtio bus (virtio-blk has no removable media)', suggestion: 'use bus: sata or bus: scsi' });
  }
  if (d.media === 'cdrom' && d.discard) {
    out.push({ code: 'SPEC_CONFLICT', path: ['disks', i, 'discard'], message: 'discard makes no sense on a read-only cdrom' });
  }
  if (d.readOnly && d.discard) {
    out.push({ code: 'SPEC_CONFLICT', path: ['disks', i, 'discard'], message: 'discard writes to the image, but the disk is readOnly' });
  }
  return out;
}

/** Which options each network type takes; anything else set on it is a conflict. */
const ALLOWED: Record<Network['type'], readonly string[]> = {
  user: ['forwards', 'restrict', 'backend'],
  bridge: ['bridge', 'vhost', 'queues', 'mtu'],
  ovs: ['bridge', 'vlan', 'vhost', 'queues', 'mtu'],
  macvtap: ['link', 'mode', 'vhost', 'queues'],
  none: [],
};
const OPTIONAL_KEYS = ['forwards', 'restrict', 'backend', 'bridge', 'vlan', 'link', 'mode', 'mtu'] as const;

function checkNetwork(n: Network, i: number): RawIssue[] {
  const out: RawIssue[] = [];
  const allowed = ALLOWED[n.type];
  for (const key of OPTIONAL_KEYS) {
    if (n[key] !== undefined && !allowed.includes(key)) {
      out.push({ code: 'SPEC_CONFLICT', path: ['networks', i, key], atKey: true, message: `"${key}" does not apply to a network of type ${n.type}`, suggestion: `type ${n.type} takes: ${allowed.length > 0 ? allowed.join(', ') : 'no options'}` });
    }
  }
  if (n.vhost && !allowed.includes('vhost')) out.push({ code: 'SPEC_CONFLICT', path: ['networks', i, 'vhost'], message: `vhost needs a TAP-based network, not type ${n.type}` });
  if (n.queues > 1 && !allowed.includes('queues')) out.push({ code: 'SPEC_CONFLICT', path: ['networks', i, 'queues'], message: `multiple queues need a TAP-based network, not type ${n.type}` });
  if (n.queues > 1 && n.model !== 'virtio') out.push({ code: 'SPEC_CONFLICT', path: ['networks', i, 'queues'], message: `multiqueue needs model virtio, not ${n.model}` });
  if ((n.type === 'bridge' || n.type === 'ovs') && n.bridge === undefined) {
    out.push({ code: 'SPEC_MISSING', path: ['networks', i], message: `a network of type ${n.type} needs "bridge" (the host bridge to attach to)` });
  }
  if (n.type === 'macvtap' && n.link === undefined) {
    out.push({ code: 'SPEC_MISSING', path: ['networks', i], message: 'a macvtap network needs "link" (the host interface it sits on)' });
  }
  return out;
}

function checkLimits(spec: Spec): RawIssue[] {
  const mem = spec.limits?.memory;
  if (mem === undefined || mem > spec.memory) return [];
  const want = formatSize(spec.memory + 256 * 1024 * 1024);
  return [{
    code: 'SPEC_CONFLICT', path: ['limits', 'memory'],
    message: `limit ${formatSize(mem)} is not above the guest memory ${formatSize(spec.memory)}: QEMU needs room for itself and would be killed`,
    suggestion: `set limits.memory to at least ${want}`,
  }];
}

/** The AHCI controller has six ports. */
function checkSata(spec: Spec): RawIssue[] {
  const sata = spec.disks.map((d, i) => ({ d, i })).filter(({ d }) => (d.bus ?? (d.media === 'cdrom' ? 'sata' : 'virtio')) === 'sata');
  return sata.slice(6).map(({ i }) => ({ code: 'SPEC_CONFLICT', path: ['disks', i, 'bus'], message: 'more than 6 sata disks: the AHCI controller has 6 ports', suggestion: 'put further disks on virtio or scsi' }));
}

/**
 * The name checks on raw data, for a spec the schema rejected: duplicates are reported in
 * the same run as type errors elsewhere, so a user fixes everything in one round.
 */
export function checkRawDuplicates(data: unknown): RawIssue[] {
  const list = (key: string, field: string): Array<string | number | undefined> => {
    const arr = (data as Record<string, unknown> | null)?.[key];
    if (!Array.isArray(arr)) return [];
    return arr.map((x) => {
      const v = (x as Record<string, unknown> | null)?.[field];
      return typeof v === 'string' || typeof v === 'number' ? v : undefined;
    });
  };
  return [
    ...duplicates(list('disks', 'name'), 'disks', 'name', 'disk name'),
    ...duplicates(list('networks', 'name'), 'networks', 'name', 'network name'),
    ...duplicates(list('networks', 'mac'), 'networks', 'mac', 'MAC address'),
  ];
}
