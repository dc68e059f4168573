/**
 * @module api/schemas: the zod schemas of every request and response of /v1. Handlers
 * validate with them, and the OpenAPI document is generated from them (openapi.ts), so the
 * document cannot drift from what the daemon accepts. The spec body is src/spec's SpecSchema.
 */
import * as z from 'zod';
import { PHASES } from '../vm/index.js';

export const ACTIONS = ['start', 'stop', 'kill', 'pause', 'resume', 'restart'] as const;
export type StateAction = (typeof ACTIONS)[number];

export const NameParams = z.strictObject({ name: z.string().describe('the VM name: 1-63 of a-z, 0-9 and -') });
export const IdParams = z.strictObject({ id: z.string() });

const bool = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');

export const StateBody = z.strictObject({
  action: z.enum(ACTIONS),
  timeout: z.number().min(0).max(3600).optional().describe('stop/restart: seconds the guest has to power off (default 30)'),
  force: z.boolean().optional().describe('stop/restart: skip the ACPI request (quit, then kill)'),
  paused: z.boolean().optional().describe('start: leave the vCPUs stopped (phase paused) until resume'),
});
export const WaitQuery = z.strictObject({
  wait: z.coerce.number().min(0).max(3600).optional().describe('wait up to this many seconds for the operation to finish'),
});
export const ListQuery = z.strictObject({ detail: bool.optional().describe('include each VM\'s record') });
export const ConsoleQuery = z.strictObject({ force: bool.optional().describe('take the console over from a client attached now') });
export const ConsoleTicket = z.object({ ticket: z.string(), path: z.string().describe('open this as a WebSocket within 30 s, once'), expiresAt: z.string() });
export const DeleteQuery = z.strictObject({ force: bool.optional().describe('kill a running VM first') });
export const LogsQuery = z.strictObject({ follow: bool.optional().describe('keep streaming while the VM runs') });
export const EventsQuery = z.strictObject({
  vm: z.string().optional().describe('comma-separated VM names'),
  type: z.string().optional().describe('comma-separated event types'),
  lastEventId: z.string().optional().describe('resume after this id (as the Last-Event-ID header)'),
});
export const SaveBody = z.strictObject({
  file: z.string().min(1).describe('absolute path of a new file; the daemon creates it (never over an existing one), so admins only'),
});
export const RestoreBody = z.strictObject({
  file: z.string().min(1).describe('absolute path of a file written by save'),
  name: z.string().optional().describe('restore as this VM (default: the name in the file)'),
});

export const MigrateBody = z.strictObject({
  target: z.string().min(1).describe('the target daemon\'s API socket (absolute path); this daemon connects to it and to the stream itself'),
  address: z.string().optional().describe('the address the target listens on for the stream (default 127.0.0.1; any other needs insecureNetwork)'),
  insecureNetwork: z.boolean().optional().describe('let the stream use a non-loopback address: the stream is not encrypted, use only on a trusted link'),
  maxBandwidth: z.number().int().positive().optional().describe('bytes per second QEMU may send (QEMU\'s max-bandwidth)'),
  copyStorage: z.boolean().optional().describe('storage not shared: the target makes the disks and the source mirrors them over NBD first'),
  pathMap: z.array(z.strictObject({ from: z.string(), to: z.string() })).optional().describe('where disk images are on the target: a path equal to or under `from` is under `to` (implies copyStorage)'),
});
export const IncomingBody = z.strictObject({
  spec: z.record(z.string(), z.unknown()).describe('the VM\'s spec as the source has it (paths absolute, the same storage)'),
  name: z.string().optional().describe('the VM\'s name here (default: the spec\'s)'),
  listen: z.strictObject({ host: z.string().describe('an address of this host'), insecure: z.boolean().optional().describe('required for a non-loopback host: the stream is not encrypted, use only on a trusted link') }).optional().describe('where to listen for the stream (default 127.0.0.1)'),
  copies: z.array(z.strictObject({ name: z.string(), path: z.string(), format: z.string(), sizeBytes: z.number().int().positive() })).optional()
    .describe('disks to make here (new files, never over one) and export over NBD for the source to mirror into'),
});
export const IncomingReply = z.object({
  operation: z.object({ id: z.string() }).passthrough(),
  address: z.object({ host: z.string(), port: z.number(), token: z.string().describe('send these bytes (hex) first; one byte answers them, then the stream') }),
  nbd: z.object({ host: z.string(), port: z.number(), token: z.string(), exports: z.record(z.string(), z.string()) }).optional()
    .describe('with copies: where the disks are exported (one connection per disk: the token, the answer byte, one more byte, then NBD)'),
});

export const QmpBody = z.strictObject({
  execute: z.string().min(1).describe('the QMP command'),
  arguments: z.record(z.string(), z.unknown()).optional(),
});

export const DiskDeviceBody = z.strictObject({
  kind: z.literal('disk').describe('a disk'),
  name: z.string().describe('the disk\'s name in the spec'),
  image: z.string().describe('absolute path of the image; its chain is walked under the image policy'),
  format: z.string().describe('the top layer\'s format (never probed)'),
  readOnly: z.boolean().optional(),
  bus: z.enum(['virtio', 'scsi']).optional(),
  liveOnly: z.boolean().optional().describe('change the running VM only, not its stored spec'),
  limits: z.record(z.string(), z.int().min(1)).optional().describe('I/O limits as in the spec (iops, iopsRead, iopsWrite, bps, bpsRead, bpsWrite; per second, bps in bytes)'),
});
export const NicDeviceBody = z.strictObject({
  kind: z.literal('nic').describe('a NIC: a TAP on a Linux or Open vSwitch bridge'),
  name: z.string().describe('the NIC\'s name in the spec'),
  type: z.enum(['bridge', 'ovs', 'user']).describe('user: passt in a jail of its own, as at boot'),
  bridge: z.string().optional().describe('the Linux or OVS bridge (bridge, ovs)'),
  vlan: z.int().min(1).max(4094).optional().describe('ovs only: the access VLAN tag'),
  mac: z.string().optional().describe('default: stable, from the VM and NIC names'),
  liveOnly: z.boolean().optional().describe('change the running VM only, not its stored spec'),
});
export const DeviceBody = z.discriminatedUnion('kind', [DiskDeviceBody, NicDeviceBody]);
export const DeviceParams = z.strictObject({ name: z.string(), id: z.string().describe('the disk\'s or NIC\'s name') });
const rate = z.int().min(0).max(1e15);
export const DevicePatch = z.strictObject({
  size: z.union([z.string(), z.number()]).optional().describe('the new size (bytes, or 10Gi, 512M ...); at least the current one'),
  limits: z.strictObject({ iops: rate.optional(), iopsRead: rate.optional(), iopsWrite: rate.optional(), bps: rate.optional(), bpsRead: rate.optional(), bpsWrite: rate.optional() }).optional()
    .describe('I/O limits to change (per second; bps in bytes), merged into the ones in force; 0 removes one'),
  clearLimits: z.boolean().optional().describe('remove every I/O limit first'),
  liveOnly: z.boolean().optional().describe('limits: change the running VM only, not its stored spec'),
}).refine((b) => b.size !== undefined || b.limits !== undefined || b.clearLimits === true, { message: 'give size, limits or clearLimits' });
export const DeviceDeleteQuery = z.strictObject({
  wait: z.coerce.number().min(0).max(3600).optional().describe('seconds to wait for the operation to finish'),
  liveOnly: bool.optional().describe('change the running VM only, not its stored spec'),
  timeout: z.coerce.number().min(0).max(600).optional().describe('seconds to wait for the guest to release the device before leaving it `removing` (default 10)'),
  kind: z.enum(['disk', 'nic']).optional().describe('which device the id names (default: the VM\'s NIC of that name if it has one and no disk of that name, else the disk)'),
});

export const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()) }),
});

export const ExitSchema = z.looseObject({
  reason: z.string(), at: z.string(), code: z.number().nullable().optional(), signal: z.string().nullable().optional(), detail: z.string(),
});

export const VmSchema = z.looseObject({
  name: z.string(),
  phase: z.enum(PHASES),
  owner: z.number().optional(),
  spec: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  updatedAt: z.string(),
  run: z.looseObject({ qemu: z.object({ pid: z.number(), startTime: z.number() }), uid: z.number(), accel: z.string(), startedAt: z.string() }).optional(),
  lastExit: ExitSchema.optional(),
});

export const VmListSchema = z.object({
  vms: z.array(z.object({
    name: z.string(), phase: z.string(), owner: z.number().nullable(), pid: z.number().nullable(), uid: z.number().nullable(),
    accel: z.string().nullable(), startedAt: z.string().nullable(), lastExit: z.string().nullable(), error: z.record(z.string(), z.unknown()).optional(),
    record: VmSchema.optional(),
  })),
});

export const OperationSchema = z.object({
  id: z.string(), vm: z.string(), action: z.string(), status: z.enum(['running', 'succeeded', 'failed']),
  createdAt: z.string(), finishedAt: z.string().optional(),
  requestor: z.object({ uid: z.number(), gid: z.number(), pid: z.number() }).optional(),
  result: z.unknown().optional(), error: z.record(z.string(), z.unknown()).optional(),
});
export const OperationReply = z.object({ operation: OperationSchema });

export const RootSchema = z.object({
  api: z.literal('v1'), version: z.string(), features: z.array(z.string()), stateRoot: z.string(),
  caller: z.object({ uid: z.number(), gid: z.number(), pid: z.number(), admin: z.boolean() }),
});

export const EventSchema = z.object({
  id: z.string(), seq: z.number(), epoch: z.string(), time: z.string(), type: z.string(), vm: z.string().nullable(),
  owner: z.number().optional(), phase: z.string().optional(), reason: z.string().optional(), detail: z.string().optional(),
  signal: z.string().nullable().optional(), code: z.number().nullable().optional(), operation: z.string().optional(),
  requestor: z.object({ uid: z.number(), gid: z.number(), pid: z.number() }).optional(), data: z.record(z.string(), z.unknown()).optional(),
});

/** External disk snapshots (src/vm/snapshot). */
export const SnapshotBody = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/).optional().describe('the snapshot\'s name (default snapN)'),
  memory: z.boolean().optional().describe('also save the RAM and device state (the VM must run); a revert then continues the guest'),
});
export const SnapshotParams = z.strictObject({ name: z.string(), snap: z.string().describe('the snapshot\'s name') });
export const SnapshotList = z.object({ snapshots: z.array(z.object({
  name: z.string(), createdAt: z.string(), vmPhase: z.string(), memory: z.boolean(), bytes: z.number(), current: z.boolean(), deleting: z.boolean(),
  disks: z.array(z.object({ disk: z.string(), base: z.string(), overlay: z.string() })),
})) });
