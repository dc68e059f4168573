/** @module api/handlers: what each /v1 route does, on a VmService acting for the caller; inputs arrive validated (app.ts). */
import { isAbsolute } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { WardenError, httpStatusFor } from '../errors/index.js';
import { parseSize, parseSpec } from '../spec/index.js';
import { NodeFs } from '../sys/index.js';
import { assertAllowed, followLog, parsePathRule, saveFileName, StateStore, summarize, type DiskCopy, type LimitsChange, type Operation, type Operations, type NicAttachRequest, type VmRecord, type VmService } from '../vm/index.js';
import { authorize, canSee, type Caller } from './auth.js';
import { ApiError, errorResponse } from './errors.js';
import { renderMetrics, type DaemonCounters } from './metrics.js';
import { openApiDocument } from './openapi.js';
import type { StateAction } from './schemas.js';
import { streamEvents } from './sse.js';
import { apiMigrationTarget } from './migrate-target.js';
import { checkCallerFiles, checkCallerSpec } from './access.js';
import type { ConsoleHub } from './console.js';

export interface HandlerCtx {
  caller: Caller;
  /** The service acting for the caller (recorded on events and as owner). */
  svc: VmService;
  /** The service itself (reads that are not on the caller's behalf). */
  service: VmService;
  operations: Operations;
  consoles: ConsoleHub;
  counters: DaemonCounters;
  version: string;
  sse: { opened(): void; closed(): void };
  req: FastifyRequest;
  reply: FastifyReply;
  params: Record<string, unknown>;
  query: Record<string, unknown>;
  body: unknown;
}

export type HandlerResult = { status: number; body: unknown } | 'hijacked';
type Handler = (c: HandlerCtx) => Promise<HandlerResult>;

export const FEATURES = ['vms', 'state-operations', 'events-sse', 'events-resume', 'logs-follow', 'serial-console-ws', 'qmp-passthrough', 'metrics', 'peer-credentials', 'restart-policy'];

const ok = (body: unknown, status = 200): HandlerResult => ({ status, body });

/** The VM, if the caller may use `perm` on it. */
async function vmFor(c: HandlerCtx, perm: 'vm:read' | 'vm:lifecycle' | 'vm:qmp' | 'vm:console'): Promise<VmRecord> {
  const rec = await c.service.get(String(c.params['name']));
  authorize(c.caller, perm, { name: rec.name, owner: rec.owner });
  return rec;
}

function runAction(svc: VmService, name: string, b: { action: StateAction; timeout?: number | undefined; force?: boolean | undefined; paused?: boolean | undefined }): Promise<unknown> {
  const stop = { ...(b.timeout === undefined ? {} : { timeoutS: b.timeout }), ...(b.force === undefined ? {} : { force: b.force }) };
  switch (b.action) {
    case 'start': return svc.start(name, b.paused === true ? { paused: true } : {});
    case 'stop': return svc.stop(name, stop);
    case 'restart': return svc.restart(name, stop);
    case 'kill': return svc.kill(name);
    case 'pause': return svc.pause(name);
    case 'resume': return svc.resume(name);
  }
}

function absolute(file: string): string {
  if (!isAbsolute(file)) throw new ApiError('API_INVALID_REQUEST', `the file must be an absolute path, got ${file}`, { context: { file } });
  return file;
}

/** save/restore as an operation, as setVmState runs the state actions (src/vm/state). */
async function stateOperation(c: HandlerCtx, vm: string, owner: number | undefined, action: 'save' | 'restore', work: () => Promise<unknown>): Promise<HandlerResult> {
  if (c.svc.save === undefined || c.svc.restore === undefined) throw new ApiError('API_INVALID_REQUEST', `this service cannot ${action}`);
  const { uid, gid, pid } = c.caller;
  const op = c.operations.start(vm, action, { uid, gid, pid }, work, (err) => errorResponse(err).body.error,
    (done) => c.service.events?.publish({ type: 'operation', vm, ...(owner === undefined ? {} : { owner }), operation: done.id, requestor: { uid, gid, pid },
      data: { action: done.action, status: done.status, ...(done.error ? { error: done.error['code'] } : {}) } }));
  const wait = c.query['wait'] as number | undefined;
  if (wait === undefined) return ok({ operation: op }, 202);
  return finished((await c.operations.wait(op.id, wait * 1000))!);
}

function opVisible(c: HandlerCtx, op: Operation | undefined): Operation {
  if (op === undefined || !(c.caller.admin || op.requestor?.uid === c.caller.uid)) {
    throw new ApiError('API_NOT_FOUND', `no such operation: ${String(c.params['id'])}`, { context: { operation: c.params['id'] } });
  }
  return op;
}

/** A finished operation as the reply of a ?wait= request: its error's status when it failed. */
function hotplug(svc: VmService): Required<Pick<VmService, 'attachDisk' | 'detachDisk'>> {
  if (svc.attachDisk === undefined || svc.detachDisk === undefined) throw new ApiError('DAEMON_UNAVAILABLE', 'this service does not hot-plug devices');
  return { attachDisk: svc.attachDisk.bind(svc), detachDisk: svc.detachDisk.bind(svc) };
}

type SnapshotVerbs = Required<Pick<VmService, 'snapshotCreate' | 'snapshotList' | 'snapshotRevert' | 'snapshotDelete'>>;
function snapshots(svc: VmService): SnapshotVerbs {
  if (svc.snapshotCreate === undefined || svc.snapshotList === undefined || svc.snapshotRevert === undefined || svc.snapshotDelete === undefined) throw new ApiError('DAEMON_UNAVAILABLE', 'this service does not take snapshots');
  return svc as VmService & SnapshotVerbs;
}

/** A hot-plug verb as an operation (202, or the finished one with ?wait=). */
function nics(svc: VmService): Required<Pick<VmService, 'attachNic' | 'detachNic'>> {
  if (svc.attachNic === undefined || svc.detachNic === undefined) throw new ApiError('DAEMON_UNAVAILABLE', 'this service does not hot-plug NICs');
  return { attachNic: svc.attachNic.bind(svc), detachNic: svc.detachNic.bind(svc) };
}

function nicBody(body: unknown): NicAttachRequest {
  const { kind: _kind, ...req } = body as NicAttachRequest & { kind: 'nic' };
  return req;
}

/** Which device a DELETE names: `kind` when given, else a NIC the VM has (spec or hot-plugged) and no disk of that name. */
function isNic(rec: VmRecord, id: string, kind: unknown): boolean {
  if (kind !== undefined) return kind === 'nic';
  const named = (k: string): boolean => ((rec.spec[k] as Array<{ name: string }> | undefined) ?? []).some((x) => x.name === id);
  const hot = (rec.hotplug ?? []).filter((e) => e.name === id);
  const nic = named('networks') || hot.some((e) => e.kind === 'nic');
  const disk = named('disks') || hot.some((e) => e.kind !== 'nic');
  return nic && !disk;
}

async function deviceOp(c: HandlerCtx, rec: VmRecord, action: string, work: () => Promise<unknown>): Promise<HandlerResult> {
  const { uid, gid, pid } = c.caller;
  const op = c.operations.start(rec.name, action, { uid, gid, pid }, work, (err) => errorResponse(err).body.error,
    (done) => c.service.events?.publish({ type: 'operation', vm: rec.name, ...(rec.owner === undefined ? {} : { owner: rec.owner }), operation: done.id, requestor: { uid, gid, pid },
      data: { action: done.action, status: done.status, ...(done.error ? { error: done.error['code'] } : {}) } }));
  const wait = c.query['wait'] as number | undefined;
  if (wait === undefined) return ok({ operation: op }, 202);
  return finished((await c.operations.wait(op.id, wait * 1000))!);
}

function finished(op: Operation): HandlerResult {
  if (op.status === 'running') return ok({ operation: op }, 202);
  if (op.status === 'succeeded') return ok({ operation: op });
  const code = String(op.error?.['code'] ?? 'INTERNAL');
  return ok({ error: { code, message: op.error?.['message'] ?? 'the operation failed', details: { ...op.error?.['details'] as object, operation: op.id } }, operation: op },
    httpStatusFor(new WardenError(code, '')));
}

export const HANDLERS: Record<string, Handler> = {
  async getRoot(c) {
    const { uid, gid, pid, admin } = c.caller;
    return ok({ api: 'v1', version: c.version, features: FEATURES, stateRoot: c.service.stateRoot, caller: { uid, gid, pid, admin } });
  },
  async listVms(c) {
    const vms = (await c.service.list()).filter((v) => v.record === null ? c.caller.admin : canSee(c.caller, v.record.owner));
    return ok({ vms: vms.map((v) => v.record === null
      ? { name: v.name, phase: 'unreadable', owner: null, pid: null, uid: null, accel: null, startedAt: null, lastExit: null, ...(v.error ? { error: v.error } : {}) }
      : { ...summarize(v.record), owner: v.record.owner ?? null, ...(c.query['detail'] === true ? { record: v.record } : {}) }) });
  },
  async createVm(c) {
    if (typeof c.body !== 'string' || c.body.trim() === '') throw new ApiError('API_INVALID_REQUEST', 'a spec is required as the body (application/json or application/yaml)');
    authorize(c.caller, 'vm:lifecycle');
    const yaml = !String(c.req.headers['content-type'] ?? '').startsWith('application/json');
    const origin = `/request-body.${yaml ? 'yaml' : 'json'}`;
    if (!c.caller.admin) checkCallerSpec(parseSpec(c.body, origin) as unknown as Record<string, unknown>, c.caller.uid); // refused before anything is recorded
    return ok(await c.svc.create({ text: c.body, origin }), 201);
  },
  async getVm(c) {
    return ok(await vmFor(c, 'vm:read'));
  },
  async inspectVm(c) {
    await vmFor(c, 'vm:read');
    return ok(await c.service.inspect(String(c.params['name'])));
  },
  async deleteVm(c) {
    const rec = await vmFor(c, 'vm:lifecycle');
    await c.svc.delete(rec.name, { force: c.query['force'] === true });
    return ok({ deleted: rec.name });
  },
  async setVmState(c) {
    const rec = await vmFor(c, 'vm:lifecycle');
    const b = c.body as { action: StateAction; timeout?: number; force?: boolean; paused?: boolean };
    assertAllowed(rec.name, rec.phase, b.action); // refused now (409), not as a failed operation
    if ((b.action === 'start' || b.action === 'restart') && !c.caller.admin) {
      checkCallerSpec(rec.spec, c.caller.uid);
      await checkCallerFiles(rec.spec, { uid: c.caller.uid, gids: c.caller.groups });
    }
    const { uid, gid, pid } = c.caller;
    const op = c.operations.start(rec.name, b.action, { uid, gid, pid }, () => runAction(c.svc, rec.name, b), (err) => errorResponse(err).body.error,
      (done) => c.service.events?.publish({ type: 'operation', vm: rec.name, ...(rec.owner === undefined ? {} : { owner: rec.owner }), operation: done.id, requestor: { uid, gid, pid },
        data: { action: done.action, status: done.status, ...(done.error ? { error: done.error['code'] } : {}) } }));
    const wait = c.query['wait'] as number | undefined;
    if (wait === undefined) return ok({ operation: op }, 202);
    return finished((await c.operations.wait(op.id, wait * 1000))!);
  },
  async saveVm(c) {
    const rec = await vmFor(c, 'vm:qmp');
    const file = absolute((c.body as { file: string }).file);
    assertAllowed(rec.name, rec.phase, 'save');
    return stateOperation(c, rec.name, rec.owner, 'save', () => c.svc.save!(rec.name, file));
  },
  async restoreVm(c) {
    authorize(c.caller, 'vm:qmp');
    const b = c.body as { file: string; name?: string };
    const file = absolute(b.file);
    const name = b.name ?? saveFileName(file);
    return stateOperation(c, name, undefined, 'restore', () => c.svc.restore!(file, { name }));
  },
  async migrateVm(c) {
    const rec = await vmFor(c, 'vm:qmp');
    const b = c.body as { target: string; address?: string; insecureNetwork?: boolean; maxBandwidth?: number; copyStorage?: boolean; pathMap?: Array<{ from: string; to: string }> };
    if (c.svc.migrate === undefined) throw new ApiError('API_INVALID_REQUEST', 'this service cannot migrate');
    assertAllowed(rec.name, rec.phase, 'migrate');
    const target = apiMigrationTarget(absolute(b.target), b.address, b.insecureNetwork === true);
    const o = { ...(b.maxBandwidth === undefined ? {} : { maxBandwidth: b.maxBandwidth }), ...(b.copyStorage === undefined ? {} : { copyStorage: b.copyStorage }),
      ...(b.pathMap === undefined ? {} : { pathMap: b.pathMap.map((r) => parsePathRule(`${r.from}=${r.to}`)) }) };
    return deviceOp(c, rec, 'migrate', () => c.svc.migrate!(rec.name, target, o));
  },
  async cancelMigration(c) {
    const rec = await vmFor(c, 'vm:qmp');
    if (c.svc.migrateCancel === undefined) throw new ApiError('API_INVALID_REQUEST', 'this service cannot cancel a migration');
    await c.svc.migrateCancel(rec.name);
    return ok({ cancelling: rec.name });
  },
  async incomingMigration(c) {
    authorize(c.caller, 'vm:qmp');
    if (c.svc.migrateIn === undefined) throw new ApiError('API_INVALID_REQUEST', 'this service cannot receive a migration');
    const b = c.body as { spec: Record<string, unknown>; name?: string; listen?: { host: string; insecure?: boolean }; copies?: DiskCopy[] };
    const inc = await c.svc.migrateIn(b.spec, { ...(b.name === undefined ? {} : { name: b.name }), listenHost: b.listen?.host ?? '127.0.0.1', ...(b.listen?.insecure === true ? { insecure: true } : {}), ...(b.copies === undefined ? {} : { copies: b.copies }) });
    const { uid, gid, pid } = c.caller;
    const op = c.operations.start(inc.name, 'migrate-in', { uid, gid, pid }, () => inc.done, (err) => errorResponse(err).body.error,
      (done) => c.service.events?.publish({ type: 'operation', vm: inc.name, operation: done.id, requestor: { uid, gid, pid },
        data: { action: done.action, status: done.status, ...(done.error ? { error: done.error['code'] } : {}) } }));
    return ok({ operation: op, address: inc.address, ...(inc.nbd === undefined ? {} : { nbd: inc.nbd }) }, 202);
  },
  async getOperation(c) {
    return ok({ operation: opVisible(c, c.operations.get(String(c.params['id']))) });
  },
  async waitOperation(c) {
    const op = opVisible(c, c.operations.get(String(c.params['id'])));
    const done = await c.operations.wait(op.id, ((c.query['wait'] as number | undefined) ?? 60) * 1000);
    return ok({ operation: done });
  },
  async getVmLogs(c) {
    const rec = await vmFor(c, 'vm:read');
    const log = new StateStore(c.service.stateRoot, new NodeFs()).paths(rec.name).serialLog;
    const res = c.reply.hijack().raw;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
    await followLog(`${log}.1`, res, { follow: false });
    await followLog(log, res, { follow: c.query['follow'] === true, until: async () => {
      if (res.destroyed) return true;
      const r = await c.service.get(rec.name).catch(() => null);
      return r === null || (r.phase !== 'running' && r.phase !== 'paused' && r.phase !== 'starting');
    } }).catch(() => undefined);
    res.end();
    return 'hijacked';
  },
  async consoleTicket(c) {
    const rec = await vmFor(c, 'vm:console');
    assertAllowed(rec.name, rec.phase, 'console');
    return ok(c.consoles.issue(rec.name, c.caller.uid, c.query['force'] === true), 201);
  },
  async addDevice(c) {
    const rec = await vmFor(c, 'vm:lifecycle');
    assertAllowed(rec.name, rec.phase, 'qmp');
    if ((c.body as { kind: string }).kind === 'nic') {
      if (!c.caller.admin) checkCallerSpec({ networks: [c.body] }, c.caller.uid); // TAPs on host bridges: admins only, as in a spec
      return deviceOp(c, rec, 'attach-nic', () => nics(c.svc).attachNic(rec.name, nicBody(c.body)));
    }
    const b = c.body as { name: string; image: string; format: string; readOnly?: boolean; bus?: 'virtio' | 'scsi'; liveOnly?: boolean; limits?: Record<string, number> };
    if (!c.caller.admin) await checkCallerFiles({ disks: [{ ...b, media: 'disk' }] }, { uid: c.caller.uid, gids: c.caller.groups });
    return deviceOp(c, rec, 'attach-disk', () => hotplug(c.svc).attachDisk(rec.name, b));
  },
  async removeDevice(c) {
    const rec = await vmFor(c, 'vm:lifecycle');
    assertAllowed(rec.name, rec.phase, 'qmp');
    const t = c.query['timeout'] as number | undefined;
    if (isNic(rec, String(c.params['id']), c.query['kind'])) return deviceOp(c, rec, 'detach-nic', () => nics(c.svc).detachNic(rec.name, String(c.params['id']), { liveOnly: c.query['liveOnly'] === true, ...(t === undefined ? {} : { waitMs: t * 1000 }) }));
    return deviceOp(c, rec, 'detach-disk', () => hotplug(c.svc).detachDisk(rec.name, String(c.params['id']), { liveOnly: c.query['liveOnly'] === true, ...(t === undefined ? {} : { waitMs: t * 1000 }) }));
  },
  async patchDevice(c) {
    const rec = await vmFor(c, 'vm:lifecycle');
    assertAllowed(rec.name, rec.phase, 'qmp');
    const body = c.body as { size?: string | number; limits?: LimitsChange['set']; clearLimits?: boolean; liveOnly?: boolean };
    if (body.size === undefined) {
      if (c.svc.setDiskLimits === undefined) throw new ApiError('DAEMON_UNAVAILABLE', 'this service does not change I/O limits');
      return ok(await c.svc.setDiskLimits(rec.name, String(c.params['id']), { set: body.limits ?? {}, ...(body.clearLimits === true ? { clear: true } : {}), ...(body.liveOnly === true ? { liveOnly: true } : {}) }));
    }
    const raw = body.size;
    const bytes = parseSize(raw);
    if (bytes === null) throw new ApiError('API_INVALID_REQUEST', `size ${JSON.stringify(raw)} is not a size (bytes, or a number with Ki/Mi/Gi/K/M/G)`, { context: { size: raw } });
    if (c.svc.resizeDisk === undefined) throw new ApiError('DAEMON_UNAVAILABLE', 'this service does not resize disks');
    return ok(await c.svc.resizeDisk(rec.name, String(c.params['id']), bytes));
  },
  async createSnapshot(c) {
    const rec = await vmFor(c, 'vm:qmp');
    assertAllowed(rec.name, rec.phase, 'snapshot');
    const b = c.body as { name?: string; memory?: boolean };
    return deviceOp(c, rec, 'snapshot-create', () => snapshots(c.svc).snapshotCreate(rec.name, { ...(b.name === undefined ? {} : { snap: b.name }), ...(b.memory === undefined ? {} : { memory: b.memory }) }));
  },
  async listSnapshots(c) {
    const rec = await vmFor(c, 'vm:read');
    return ok({ snapshots: await snapshots(c.service).snapshotList(rec.name) });
  },
  async revertSnapshot(c) {
    const rec = await vmFor(c, 'vm:qmp');
    assertAllowed(rec.name, rec.phase, 'snapshot');
    return deviceOp(c, rec, 'snapshot-revert', () => snapshots(c.svc).snapshotRevert(rec.name, String(c.params['snap'])));
  },
  async deleteSnapshot(c) {
    const rec = await vmFor(c, 'vm:qmp');
    assertAllowed(rec.name, rec.phase, 'snapshot');
    return deviceOp(c, rec, 'snapshot-delete', () => snapshots(c.svc).snapshotDelete(rec.name, String(c.params['snap'])));
  },
  async vmQmp(c) {
    const rec = await vmFor(c, 'vm:qmp');
    const b = c.body as { execute: string; arguments?: Record<string, unknown> };
    return ok({ return: await c.svc.qmp(rec.name, b.execute, b.arguments) });
  },
  async events(c) {
    const events = c.service.events;
    if (events === null) throw new ApiError('DAEMON_UNAVAILABLE', 'this service has no event stream');
    const list = (v: unknown): string[] | undefined => (typeof v === 'string' && v !== '' ? v.split(',') : undefined);
    const last = String(c.req.headers['last-event-id'] ?? c.query['lastEventId'] ?? '');
    const vm = list(c.query['vm']);
    const type = list(c.query['type']);
    const res = c.reply.hijack().raw;
    c.sse.opened();
    res.on('close', () => c.sse.closed());
    streamEvents(res, events, c.caller, { ...(vm ? { vm } : {}), ...(type ? { type } : {}), lastEventId: last }, () => { c.counters.eventsDropped++; });
    return 'hijacked';
  },
  async openapi(c) {
    return ok(openApiDocument(c.version));
  },
  async metrics(c) {
    const text = renderMetrics(await c.service.list(), c.counters);
    c.reply.type('text/plain; version=0.0.4');
    return ok(text);
  },
};
