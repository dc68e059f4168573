/** @module spec/schema: the warden/v1 VM spec as zod schemas; the single source of the types, the validator and the JSON Schema. */
import * as z from 'zod';
import { DEVICE_NAME_RE, MAC_RE, NAME_RE, isUnicastMac, parsePercent, parseSize } from './units.js';
import { cloudInitSchemas } from './cloudinit.js';
import { diskLimitsSchema } from './disk-limits.js';
import { lazySchema, once } from './lazy.js';

const SIZE_TEXT = /^[0-9]+(Ki|Mi|Gi|Ti)?$/;

/** serial.logMax: default and bounds (a cap below one pipe read would rotate on every line). */
export const SERIAL_LOG_DEFAULT = 8 * 1024 * 1024;
const SERIAL_LOG_MIN = 64 * 1024;
const SERIAL_LOG_MAX = 1024 ** 3;

const size = (what: string) =>
  z.union([z.int().positive(), z.string().regex(SIZE_TEXT, { message: `is not a size: write bytes or a number with Ki, Mi, Gi or Ti (e.g. 512Mi)` })])
    .describe(`${what}: bytes, or a number with Ki, Mi, Gi or Ti (e.g. 1Gi)`)
    .transform((v, ctx) => {
      const bytes = parseSize(v);
      if (bytes === null) {
        ctx.addIssue({ code: 'custom', message: `${what} ${JSON.stringify(v)} is not a size: write bytes or a number with Ki, Mi, Gi or Ti (e.g. 512Mi)` });
        return z.NEVER;
      }
      return bytes;
    });

/**
 * The spec's schemas, built on first use (spec/lazy): the exports below stand in for them,
 * and the spec module's own code (parse, json-schema) uses these.
 */
export const specSchemas = once(() => {
  const percent = z.union([z.number().positive(), z.string().regex(/^[0-9]+(\.[0-9]+)?%$/, { message: 'is not a percentage of one CPU: write e.g. 150% for one and a half CPUs' })])
    .describe('CPU bandwidth in percent of one CPU, e.g. 150%')
    .transform((v, ctx) => {
      const p = parsePercent(v);
      if (p === null) {
        ctx.addIssue({ code: 'custom', message: `cpu limit ${JSON.stringify(v)} is not a percentage: write e.g. 150% (one and a half CPUs)` });
        return z.NEVER;
      }
      return p;
    });

  const deviceName = z.string().regex(DEVICE_NAME_RE, { message: 'must match [a-z][a-z0-9-]{0,15} (it becomes part of QEMU node names)' });
  const path = z.string().min(1).describe('a host path; relative paths are relative to the spec file');
  const port = z.int().min(1).max(65535);

  const mac = z.string()
    .regex(MAC_RE, { message: 'must be six lower-case hex octets separated by colons, e.g. 52:54:00:12:34:56' })
    .refine(isUnicastMac, { message: 'must be a unicast MAC (the lowest bit of the first octet clear)' });

  const DiskSchema = z.strictObject({
    name: deviceName,
    image: path,
    format: z.enum(['raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vpc', 'vhdx']).describe('the top layer\'s format: required, it is never probed'),
    bus: z.enum(['virtio', 'scsi', 'sata']).optional().describe('default: virtio for disks, sata for cdroms'),
    media: z.enum(['disk', 'cdrom']).default('disk'),
    readOnly: z.boolean().default(false),
    cache: z.enum(['none', 'writeback', 'unsafe']).default('writeback').describe('none opens the image with O_DIRECT'),
    discard: z.boolean().default(false).describe('pass guest discards (TRIM) to the image'),
    bootIndex: z.int().min(0).max(99).optional(),
    serial: z.string().regex(/^[A-Za-z0-9_.-]{1,20}$/, { message: 'must be 1-20 characters of A-Z a-z 0-9 _ . -' }).optional(),
    allowDirs: z.array(path).max(16).optional().describe('directories (subdirectories included) this disk\'s backing files, data files and extents may lie in, besides the top image\'s directory and the host policy\'s imageDirs'),
    dataFile: path.optional().describe('an external data file this disk\'s image may name although it lies outside the allowed directories'),
    limits: diskLimitsSchema().optional(),
  });

  const ForwardSchema = z.strictObject({
    proto: z.enum(['tcp', 'udp']).default('tcp'),
    host: z.int().min(0).max(65535).describe('host port; 0: a free port chosen at each start (inspect and list --json show it)'),
    guest: port,
    hostAddress: z.ipv4().default('127.0.0.1').describe('host address to listen on (default 127.0.0.1)'),
  });

  const NetworkSchema = z.strictObject({
    name: deviceName,
    type: z.enum(['user', 'bridge', 'ovs', 'macvtap', 'none']),
    model: z.enum(['virtio', 'e1000e', 'rtl8139']).default('virtio'),
    mac: mac.optional().describe('generated from the VM and NIC names when omitted (stable)'),
    forwards: z.array(ForwardSchema).optional().describe('user networking only: host ports forwarded into the guest'),
    restrict: z.boolean().optional().describe('user networking only: cut the guest off from the host and the outside, except the forwards'),
    backend: z.enum(['passt', 'slirp']).optional().describe('user networking only: passt in a jail of its own (default), or slirp, QEMU\'s built-in user networking, inside QEMU (explicit opt-in)'),
    bridge: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, { message: 'must be an interface name (1-15 characters)' }).optional(),
    vlan: z.int().min(1).max(4094).optional().describe('ovs only: the access VLAN tag'),
    link: z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, { message: 'must be an interface name (1-15 characters)' }).optional(),
    mode: z.enum(['bridge', 'vepa', 'private', 'passthru']).optional().describe('macvtap only (default bridge)'),
    queues: z.int().min(1).max(16).default(1),
    vhost: z.boolean().default(false).describe('accelerate with /dev/vhost-net (tap-based types only)'),
    mtu: z.int().min(68).max(65535).optional(),
  });

  const ShareSchema = z.strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,35}$/, { message: 'must match [a-z0-9][a-z0-9_-]{0,35} (it is the virtiofs tag the guest mounts)' }).describe('the virtiofs tag: mount -t virtiofs NAME /mnt in the guest'),
    path: path.describe('a host directory, served by virtiofsd in a jail of its own that sees only it'),
    readonly: z.boolean().default(false).describe('read-only in the guest and at virtiofsd (its view of the directory is a read-only mount)'),
  });

  const BootSchema = z.strictObject({
    kernel: path,
    initrd: path.optional(),
    cmdline: z.string().max(4096).optional(),
  });

  const LimitsSchema = z.strictObject({
    cpu: percent.optional(),
    memory: size('memory limit').optional(),
    pids: z.int().min(16).max(1 << 22).optional(),
  });

  const SpecSchema = z.strictObject({
    apiVersion: z.literal('warden/v1'),
    name: z.string().regex(NAME_RE, { message: 'must match [a-z0-9][a-z0-9-]{0,62}' }),
    cpus: z.int().min(1).max(255).default(1),
    memory: size('memory').default(512 * 1024 * 1024),
    machine: z.enum(['q35', 'pc']).default('q35'),
    accel: z.enum(['auto', 'kvm', 'tcg']).default('auto'),
    firmware: z.enum(['bios', 'uefi']).default('bios'),
    secureBoot: z.boolean().default(false).describe('UEFI secure boot (firmware: uefi, machine: q35): OVMF\'s secure-boot build with Microsoft\'s keys enrolled, SMM on'),
    boot: BootSchema.optional(),
    disks: z.array(DiskSchema).max(32).default([]),
    networks: z.array(NetworkSchema).max(16).default([]),
    serial: z.strictObject({
      log: z.literal(true).default(true).describe('the serial console is always logged'),
      logMax: size('serial log size')
        .refine((n) => n >= SERIAL_LOG_MIN && n <= SERIAL_LOG_MAX, { message: 'must be between 64Ki and 1Gi' })
        .default(SERIAL_LOG_DEFAULT)
        .describe('serial.log is rotated to serial.log.1 when it would grow past this (so at most twice it on disk); default 8Mi'),
    }).default({ log: true, logMax: SERIAL_LOG_DEFAULT }),
    limits: LimitsSchema.optional(),
    rng: z.boolean().default(true).describe('a virtio-rng device fed by QEMU\'s built-in source (no host device)'),
    balloon: z.boolean().default(false).describe('a virtio-balloon device'),
    guestAgent: z.boolean().default(false).describe('a virtio-serial channel for the QEMU guest agent, on a socket the manager listens on'),
    vnc: z.boolean().default(false).describe('a VGA display, reached only through the daemon\'s display WebSocket (QEMU listens on no port or socket)'),
    restart: z.enum(['never', 'on-failure', 'always']).optional()
      .describe('wardend restarts the VM when QEMU ends without a stop request: on-failure after a crash or OOM kill, always also after a guest poweroff; with backoff (default never)'),
    autostart: z.boolean().optional().describe('wardend starts the VM when it starts, unless it runs already (default false)'),
    scsiController: z.boolean().optional().describe('plan the virtio-scsi controller (scsi0) even when no disk has bus: scsi, so scsi disks can be hot-plugged (default: only with a scsi disk)'),
    hotplugSlots: z.int().min(0).max(8).optional().describe('q35: empty pcie-root-ports reserved at boot, one per device hot-plugged at a time (pcie.0 takes none; default 0); pc hot-plugs on its root bus'),
    cloudInit: cloudInitSchemas().CloudInitSchema.optional(),
    tpm: z.union([z.boolean(), z.strictObject({ version: z.literal('2.0') })]).optional()
      .describe('a TPM 2.0 (true or { version: "2.0" }): swtpm in a jail of its own, its state kept in the VM\'s directory across restarts; tpm-crb on q35, tpm-tis on pc'),
    shares: z.array(ShareSchema).max(8).optional().describe('host directories shared with the guest (virtiofs); guest memory becomes a shared memfd'),
  });
  return { DiskSchema, ForwardSchema, NetworkSchema, ShareSchema, BootSchema, LimitsSchema, SpecSchema };
});

export const DiskSchema = lazySchema(() => specSchemas().DiskSchema);
export const ForwardSchema = lazySchema(() => specSchemas().ForwardSchema);
export const NetworkSchema = lazySchema(() => specSchemas().NetworkSchema);
export const ShareSchema = lazySchema(() => specSchemas().ShareSchema);
export const BootSchema = lazySchema(() => specSchemas().BootSchema);
export const LimitsSchema = lazySchema(() => specSchemas().LimitsSchema);
export const SpecSchema = lazySchema(() => specSchemas().SpecSchema);

/** The spec as validated: defaults filled, sizes in bytes, CPU limit in percent; paths still as written. */
export type Spec = z.output<typeof SpecSchema>;
export type Disk = Spec['disks'][number];
export type Network = Spec['networks'][number];
export type Forward = NonNullable<Network['forwards']>[number];
export type Share = NonNullable<Spec['shares']>[number];
/** The spec as a user may write it. */
export type SpecInput = z.input<typeof SpecSchema>;
