/**
 * @module api/routes: the /v1 route table: method, path, permission, and the zod schemas of
 * params, query, body and replies. app.ts serves it; openapi.ts documents it. A handler
 * gets its inputs already validated by these schemas.
 */
import type { z } from 'zod';
import { SpecSchema } from '../spec/index.js';
import type { Permission } from './auth.js';
import {
  ConsoleQuery, ConsoleTicket, DeleteQuery, DeviceBody, DeviceDeleteQuery, DeviceParams, DevicePatch, ErrorSchema, EventSchema, ListQuery, EventsQuery, IdParams, LogsQuery, NameParams, OperationReply, QmpBody, RestoreBody, MigrateBody, IncomingBody, IncomingReply, RootSchema, SaveBody, SnapshotBody, SnapshotList, SnapshotParams, StateBody, VmListSchema, VmSchema, WaitQuery,
} from './schemas.js';

export interface Reply {
  description: string;
  schema?: z.ZodType;
  /** Default application/json. */
  contentType?: string;
}

export interface RouteDef {
  id: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** fastify style: /v1/vms/:name */
  path: string;
  summary: string;
  permission: Permission;
  params?: z.ZodType;
  query?: z.ZodType;
  /** A JSON body validated by this schema, or the spec (JSON or YAML, validated by src/spec). */
  body?: z.ZodType | 'spec';
  replies: Record<number, Reply>;
}

const err = (description: string): Reply => ({ description, schema: ErrorSchema });
const common = { 400: err('bad request (API_*, SPEC_*, VM_BAD_NAME)'), 403: err('not allowed (AUTH_FORBIDDEN)') };
const vmCommon = { ...common, 404: err('no such VM (VM_NOT_FOUND)') };
/** What a route that runs as an operation answers: 202 at once, or 200 once finished with ?wait=. */
const operationReplies = { 200: { description: 'finished (with ?wait=)', schema: OperationReply }, 202: { description: 'accepted, running', schema: OperationReply } };

export const ROUTES: readonly RouteDef[] = [
  { id: 'getRoot', method: 'GET', path: '/v1', summary: 'API version, features and who you are', permission: 'host:read',
    replies: { 200: { description: 'the API root', schema: RootSchema } } },
  { id: 'listVms', method: 'GET', path: '/v1/vms', summary: 'the VMs you may see, with their phase', permission: 'vm:read', query: ListQuery,
    replies: { 200: { description: 'the VMs', schema: VmListSchema }, ...common } },
  { id: 'createVm', method: 'POST', path: '/v1/vms', summary: 'define a VM from a spec (application/json or application/yaml); paths in it must be absolute', permission: 'vm:lifecycle',
    body: 'spec', replies: { 201: { description: 'the new VM', schema: VmSchema }, ...common, 409: err('the name is taken (VM_EXISTS)'), 415: err('not JSON or YAML') } },
  { id: 'getVm', method: 'GET', path: '/v1/vms/:name', summary: 'one VM', permission: 'vm:read', params: NameParams,
    replies: { 200: { description: 'the VM', schema: VmSchema }, ...vmCommon } },
  { id: 'deleteVm', method: 'DELETE', path: '/v1/vms/:name', summary: 'delete a VM that is not running (force: kill it first)', permission: 'vm:lifecycle',
    params: NameParams, query: DeleteQuery, replies: { 200: { description: 'deleted' }, ...vmCommon, 409: err('it runs (VM_INVALID_STATE)') } },
  { id: 'setVmState', method: 'PUT', path: '/v1/vms/:name/state', summary: 'start, stop, kill, pause, resume or restart: 202 with an operation, or with ?wait= the finished one', permission: 'vm:lifecycle',
    params: NameParams, query: WaitQuery, body: StateBody,
    replies: { ...operationReplies, ...vmCommon, 409: err('not allowed in this phase (VM_INVALID_STATE)') } },
  { id: 'inspectVm', method: 'GET', path: '/v1/vms/:name/inspect', summary: 'spec, plan, process as seen from outside, protections, last exit', permission: 'vm:read', params: NameParams,
    replies: { 200: { description: 'the inspection' }, ...vmCommon } },
  { id: 'getVmLogs', method: 'GET', path: '/v1/vms/:name/logs', summary: 'the serial console log (follow=1: keep streaming while it runs)', permission: 'vm:read',
    params: NameParams, query: LogsQuery, replies: { 200: { description: 'the log bytes', contentType: 'application/octet-stream' }, ...vmCommon } },
  { id: 'consoleTicket', method: 'POST', path: '/v1/vms/:name/console', summary: 'a one-shot ticket for the serial console WebSocket (GET path with Upgrade: websocket; serial.log tail first, then live bytes)',
    permission: 'vm:console', params: NameParams, query: ConsoleQuery,
    replies: { 201: { description: 'the ticket', schema: ConsoleTicket }, ...vmCommon, 409: err('not running, or attached elsewhere') } },
  { id: 'vmQmp', method: 'POST', path: '/v1/vms/:name/qmp', summary: 'run one QMP command (admins only)', permission: 'vm:qmp',
    params: NameParams, body: QmpBody, replies: { 200: { description: 'QEMU\'s return value' }, ...vmCommon, 409: err('not running') } },
  { id: 'addDevice', method: 'POST', path: '/v1/vms/:name/devices', summary: 'hot-plug a disk or a NIC into the running VM by fd: 202 with an operation, or with ?wait= the finished one', permission: 'vm:lifecycle',
    params: NameParams, query: WaitQuery, body: DeviceBody,
    replies: { ...operationReplies, ...vmCommon, 409: err('not running, or the disk is in use (VM_DISK_IN_USE, VM_HOTPLUG_FAILED)') } },
  { id: 'removeDevice', method: 'DELETE', path: '/v1/vms/:name/devices/:id', summary: 'detach a hot-plugged disk or NIC (result state `removing` while the guest holds it)', permission: 'vm:lifecycle',
    params: DeviceParams, query: DeviceDeleteQuery,
    replies: { ...operationReplies, ...vmCommon } },
  { id: 'patchDevice', method: 'PATCH', path: '/v1/vms/:name/devices/:id', summary: 'grow a running VM\'s disk (block_resize of its top layer; shrinking is refused), or change its I/O limits (qom-set on its throttle group, else block_set_io_throttle)', permission: 'vm:lifecycle',
    params: DeviceParams, body: DevicePatch,
    replies: { 200: { description: 'resized: {vm, disk, node, fromBytes, toBytes}; limits: {vm, disk, limits, via, liveOnly}' }, ...vmCommon, 409: err('not running, or read-only (VM_HOTPLUG_FAILED)') } },
  { id: 'saveVm', method: 'POST', path: '/v1/vms/:name/save', summary: 'save the VM\'s state into a new file the daemon opens, then stop it (admins only: the daemon creates the file): an operation', permission: 'vm:qmp',
    params: NameParams, query: WaitQuery, body: SaveBody,
    replies: { ...operationReplies, ...vmCommon, 409: err('not running or paused (VM_INVALID_STATE)') } },
  { id: 'restoreVm', method: 'POST', path: '/v1/restore', summary: 'start the VM saved in a file, jailed as any start (admins only): an operation', permission: 'vm:qmp',
    query: WaitQuery, body: RestoreBody,
    replies: { ...operationReplies, ...common } },
  { id: 'createSnapshot', method: 'POST', path: '/v1/vms/:name/snapshots', summary: 'an external snapshot of the VM\'s disks (and RAM with memory), running or stopped; the daemon creates the overlays next to the disks, so admins only: an operation', permission: 'vm:qmp',
    params: NameParams, query: WaitQuery, body: SnapshotBody,
    replies: { ...operationReplies, ...vmCommon, 409: err('the name is taken (VM_SNAPSHOT_EXISTS), or not allowed in this phase') } },
  { id: 'listSnapshots', method: 'GET', path: '/v1/vms/:name/snapshots', summary: 'the VM\'s snapshots: time, disks, bytes, memory or not', permission: 'vm:read', params: NameParams,
    replies: { 200: { description: 'the snapshots', schema: SnapshotList }, ...vmCommon } },
  { id: 'revertSnapshot', method: 'POST', path: '/v1/vms/:name/snapshots/:snap/revert', summary: 'stop the VM, reset its disks to the snapshot on fresh overlays, and start it again (restoring the RAM state when it has one): an operation', permission: 'vm:qmp',
    params: SnapshotParams, query: WaitQuery, replies: { ...operationReplies, ...vmCommon } },
  { id: 'deleteSnapshot', method: 'DELETE', path: '/v1/vms/:name/snapshots/:snap', summary: 'merge the snapshot\'s layer away while the VM runs (block-commit), remove its files: an operation', permission: 'vm:qmp',
    params: SnapshotParams, query: WaitQuery, replies: { ...operationReplies, ...vmCommon } },
  { id: 'migrateVm', method: 'POST', path: '/v1/vms/:name/migrate', summary: 'live-migrate the VM to another daemon (admins only): an operation; progress events carry QEMU\'s figures', permission: 'vm:qmp',
    params: NameParams, query: WaitQuery, body: MigrateBody,
    replies: { ...operationReplies, ...vmCommon, 409: err('not running or paused (VM_INVALID_STATE)') } },
  { id: 'cancelMigration', method: 'DELETE', path: '/v1/vms/:name/migrate', summary: 'cancel the VM\'s migration in progress (migrate_cancel); the VM runs on here', permission: 'vm:qmp',
    params: NameParams, replies: { 200: { description: 'cancel requested' }, ...vmCommon, 409: err('not migrating (VM_INVALID_STATE)') } },
  { id: 'incomingMigration', method: 'POST', path: '/v1/migrations/incoming', summary: 'the target side of a live migration: define and launch the VM waiting for the stream, listen for it (admins only): 202 with the operation and the address', permission: 'vm:qmp',
    body: IncomingBody, replies: { 202: { description: 'ready for the stream', schema: IncomingReply }, ...common, 409: err('a VM of that name exists here (VM_EXISTS)') } },
  { id: 'getOperation', method: 'GET', path: '/v1/operations/:id', summary: 'an operation', permission: 'vm:read', params: IdParams,
    replies: { 200: { description: 'the operation', schema: OperationReply }, 404: err('no such operation (kept at least 5 minutes after it ends)') } },
  { id: 'waitOperation', method: 'GET', path: '/v1/operations/:id/wait', summary: 'an operation once it has finished (or after ?wait= seconds, default 60)', permission: 'vm:read',
    params: IdParams, query: WaitQuery, replies: { 200: { description: 'the operation', schema: OperationReply }, 404: err('no such operation') } },
  { id: 'events', method: 'GET', path: '/v1/events', summary: 'Server-Sent Events: VM changes; ?vm=&type= filter; Last-Event-ID resumes, resync on a gap', permission: 'vm:read',
    query: EventsQuery, replies: { 200: { description: 'an event stream; each event\'s data is one Event', contentType: 'text/event-stream', schema: EventSchema } } },
  { id: 'openapi', method: 'GET', path: '/v1/openapi.json', summary: 'this document', permission: 'host:read', replies: { 200: { description: 'OpenAPI 3.1' } } },
  { id: 'metrics', method: 'GET', path: '/v1/metrics', summary: 'Prometheus text metrics (warden_ prefix)', permission: 'host:read',
    replies: { 200: { description: 'metrics', contentType: 'text/plain; version=0.0.4' } } },
];

export const SPEC_BODY = SpecSchema;
