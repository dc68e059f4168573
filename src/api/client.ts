/**
 * @module api/client: a typed client of the daemon's /v1 API over its unix socket. Error
 * replies become WardenErrors with the daemon's code, so callers (and the CLI's exit
 * status) branch on the same codes as in-process; a socket that does not answer is
 * DAEMON_UNAVAILABLE.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WardenError } from '../errors/index.js';
import type { Inspection, Operation, VmEvent, VmRecord, VmSummary } from '../vm/index.js';
import { ApiError, type ErrorBody } from './errors.js';
import type { StateAction } from './schemas.js';

export interface ApiRoot {
  api: 'v1';
  version: string;
  features: string[];
  stateRoot: string;
  caller: { uid: number; gid: number; pid: number; admin: boolean };
}

export type VmListItem = VmSummary & { owner: number | null; error?: Record<string, unknown>; record?: VmRecord };

export interface ApiResponse<T> {
  status: number;
  headers: IncomingMessage['headers'];
  body: T;
}

export class ApiClient {
  constructor(readonly socket: string, private readonly timeoutMs = 0) {}

  /** One request; JSON bodies are sent as JSON, strings as they are with `contentType`. */
  raw(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<ApiResponse<string>> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest({
        // No agent: the global one's keep-alive timeout (5 s) would cut a start short.
        socketPath: this.socket, method, path, agent: false,
        headers: payload === undefined ? {} : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) },
        ...(this.timeoutMs > 0 ? { timeout: this.timeoutMs } : {}),
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      if (this.timeoutMs > 0) req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (cause) => reject(new ApiError('DAEMON_UNAVAILABLE', `the daemon at ${this.socket} does not answer`, {
        context: { socket: this.socket }, cause, suggestions: ['start it: warden daemon', 'or unset WARDEN_SOCKET to work without it'],
      })));
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** A JSON request; an error reply is thrown as a WardenError with the daemon's code. */
  async json<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<ApiResponse<T>> {
    const r = await this.raw(method, path, body, contentType);
    let v: unknown;
    try {
      v = r.body === '' ? null : JSON.parse(r.body);
    } catch (cause) {
      throw new ApiError('DAEMON_BAD_RESPONSE', `the daemon's reply to ${method} ${path} is not JSON (status ${r.status})`, { cause, context: { status: r.status, body: r.body.slice(0, 200) } });
    }
    const e = (v as Partial<ErrorBody> | null)?.error;
    if (r.status >= 400 && e !== undefined) {
      const d = e.details ?? {};
      throw new WardenError(e.code, e.message, {
        context: { ...(d['context'] as Record<string, unknown> | undefined), status: r.status },
        suggestions: (d['suggestions'] as string[] | undefined) ?? [],
      });
    }
    return { ...r, body: v as T };
  }

  async root(): Promise<ApiRoot> { return (await this.json<ApiRoot>('GET', '/v1')).body; }
  async listVms(detail = false): Promise<VmListItem[]> { return (await this.json<{ vms: VmListItem[] }>('GET', `/v1/vms${detail ? '?detail=1' : ''}`)).body.vms; }
  async getVm(name: string): Promise<VmRecord> { return (await this.json<VmRecord>('GET', `/v1/vms/${encodeURIComponent(name)}`)).body; }
  async inspectVm(name: string): Promise<Inspection> { return (await this.json<Inspection>('GET', `/v1/vms/${encodeURIComponent(name)}/inspect`)).body; }

  /** Defines a VM from a spec: an object (sent as JSON) or YAML text. */
  async createVm(spec: Record<string, unknown> | string): Promise<VmRecord> {
    const yaml = typeof spec === 'string';
    return (await this.json<VmRecord>('POST', '/v1/vms', yaml ? spec : JSON.stringify(spec), yaml ? 'application/yaml' : 'application/json')).body;
  }

  async deleteVm(name: string, force = false): Promise<void> {
    await this.json('DELETE', `/v1/vms/${encodeURIComponent(name)}${force ? '?force=1' : ''}`);
  }

  /** Asks for a state change; with `waitS`, waits for it (an operation that failed is thrown as its error). */
  async setState(name: string, body: { action: StateAction; timeout?: number; force?: boolean; paused?: boolean }, waitS?: number): Promise<Operation> {
    const q = waitS === undefined ? '' : `?wait=${waitS}`;
    return (await this.json<{ operation: Operation }>('PUT', `/v1/vms/${encodeURIComponent(name)}/state${q}`, body)).body.operation;
  }

  /** POST /v1/vms/NAME/devices (disk hot-plug), waiting up to `waitS` for the operation. */
  async addDevice(name: string, body: Record<string, unknown>, waitS: number): Promise<Operation> {
    return (await this.json<{ operation: Operation }>('POST', `/v1/vms/${encodeURIComponent(name)}/devices?wait=${waitS}`, body)).body.operation;
  }

  async removeDevice(name: string, id: string, q: { liveOnly?: boolean; timeout?: number; kind?: 'disk' | 'nic' }, waitS: number): Promise<Operation> {
    const extra = `${q.liveOnly === true ? '&liveOnly=1' : ''}${q.timeout === undefined ? '' : `&timeout=${q.timeout}`}${q.kind === undefined ? '' : `&kind=${q.kind}`}`;
    return (await this.json<{ operation: Operation }>('DELETE', `/v1/vms/${encodeURIComponent(name)}/devices/${encodeURIComponent(id)}?wait=${waitS}${extra}`)).body.operation;
  }

  async patchDevice(name: string, id: string, body: { size?: number | string; limits?: Record<string, number>; clearLimits?: boolean; liveOnly?: boolean }): Promise<unknown> {
    return (await this.json<unknown>('PATCH', `/v1/vms/${encodeURIComponent(name)}/devices/${encodeURIComponent(id)}`, body)).body;
  }

  /** POST /v1/vms/NAME/snapshots, waiting up to `waitS` for the operation. */
  async createSnapshot(name: string, body: { name?: string; memory?: boolean }, waitS: number): Promise<Operation> {
    return (await this.json<{ operation: Operation }>('POST', `/v1/vms/${encodeURIComponent(name)}/snapshots?wait=${waitS}`, body)).body.operation;
  }

  async listSnapshots(name: string): Promise<unknown[]> {
    return (await this.json<{ snapshots: unknown[] }>('GET', `/v1/vms/${encodeURIComponent(name)}/snapshots`)).body.snapshots;
  }

  async revertSnapshot(name: string, snap: string, waitS: number): Promise<Operation> {
    return (await this.json<{ operation: Operation }>('POST', `/v1/vms/${encodeURIComponent(name)}/snapshots/${encodeURIComponent(snap)}/revert?wait=${waitS}`)).body.operation;
  }

  async deleteSnapshot(name: string, snap: string, waitS: number): Promise<Operation> {
    return (await this.json<{ operation: Operation }>('DELETE', `/v1/vms/${encodeURIComponent(name)}/snapshots/${encodeURIComponent(snap)}?wait=${waitS}`)).body.operation;
  }

  /** POST /v1/vms/NAME/save: the daemon creates `file` (an absolute path) and saves the VM into it. */
  async saveVm(name: string, file: string, waitS?: number): Promise<Operation> {
    const q = waitS === undefined ? '' : `?wait=${waitS}`;
    return (await this.json<{ operation: Operation }>('POST', `/v1/vms/${encodeURIComponent(name)}/save${q}`, { file })).body.operation;
  }

  /** POST /v1/restore: the VM saved in `file` (an absolute path) runs again. */
  async restoreVm(file: string, name?: string, waitS?: number): Promise<Operation> {
    const q = waitS === undefined ? '' : `?wait=${waitS}`;
    return (await this.json<{ operation: Operation }>('POST', `/v1/restore${q}`, { file, ...(name === undefined ? {} : { name }) })).body.operation;
  }

  /** POST /v1/vms/NAME/migrate: this daemon moves the VM to the daemon on `target` (its socket). */
  async migrateVm(name: string, body: { target: string; address?: string; insecureNetwork?: boolean; maxBandwidth?: number; copyStorage?: boolean; pathMap?: Array<{ from: string; to: string }> }, waitS?: number): Promise<Operation> {
    const q = waitS === undefined ? '' : `?wait=${waitS}`;
    return (await this.json<{ operation: Operation }>('POST', `/v1/vms/${encodeURIComponent(name)}/migrate${q}`, body)).body.operation;
  }

  /** DELETE /v1/vms/NAME/migrate: migrate_cancel; the VM runs on where it is. */
  async cancelMigration(name: string): Promise<void> {
    await this.json('DELETE', `/v1/vms/${encodeURIComponent(name)}/migrate`);
  }

  async operation(id: string): Promise<Operation> { return (await this.json<{ operation: Operation }>('GET', `/v1/operations/${encodeURIComponent(id)}`)).body.operation; }
  async waitOperation(id: string, waitS = 60): Promise<Operation> {
    return (await this.json<{ operation: Operation }>('GET', `/v1/operations/${encodeURIComponent(id)}/wait?wait=${waitS}`)).body.operation;
  }

  /**
   * Follows /v1/events: calls `onEvent` for each event (a `resync` too) until `stop()` or the
   * daemon ends the stream; resolves then. `lastEventId` resumes after that event.
   */
  events(q: { vm?: string[]; type?: string[]; lastEventId?: string }, onEvent: (e: VmEvent | { type: 'resync'; epoch: string; reason: string }) => void):
    { ready: Promise<void>; done: Promise<void>; stop: () => void } {
    const qs = new URLSearchParams();
    if (q.vm?.length) qs.set('vm', q.vm.join(','));
    if (q.type?.length) qs.set('type', q.type.join(','));
    let stop = (): void => {};
    let subscribed = (): void => {};
    const ready = new Promise<void>((r) => { subscribed = r; });
    const done = new Promise<void>((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socket, path: `/v1/events${qs.size > 0 ? `?${qs}` : ''}`, agent: false,
        headers: q.lastEventId ? { 'last-event-id': q.lastEventId } : {} }, (res) => {
        if ((res.statusCode ?? 0) >= 400) { res.resume(); reject(new ApiError('DAEMON_BAD_RESPONSE', `GET /v1/events answered ${res.statusCode}`)); return; }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          subscribed(); // the daemon writes a comment line once the subscription is in place
          buf += c;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const data = buf.slice(0, i).split('\n').find((l) => l.startsWith('data: '));
            buf = buf.slice(i + 2);
            if (data !== undefined) onEvent(JSON.parse(data.slice(6)));
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', (cause) => reject(new ApiError('DAEMON_UNAVAILABLE', `the daemon at ${this.socket} does not answer`, { context: { socket: this.socket }, cause })));
      req.end();
      stop = () => { req.destroy(); subscribed(); resolve(); };
    });
    done.catch(() => subscribed());
    return { ready, done, stop: () => stop() };
  }

  /** The serial console as a stream (ticket, then the WebSocket): the serial.log tail first, then live bytes both ways. */
  async openConsole(name: string, force = false): Promise<Duplex> {
    const { WebSocket, createWebSocketStream } = await import('ws'); // only the console needs it: not loaded at CLI start-up
    const t = (await this.json<{ path: string }>('POST', `/v1/vms/${encodeURIComponent(name)}/console${force ? '?force=1' : ''}`)).body;
    const ws = new WebSocket(`ws+unix://${this.socket}:${t.path}`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => { body += c.toString(); });
        res.on('end', () => {
          const e = (() => { try { return (JSON.parse(body) as ErrorBody).error; } catch { return undefined; } })();
          reject(new WardenError(e?.code ?? 'DAEMON_BAD_RESPONSE', e?.message ?? `the console upgrade was refused (${res.statusCode})`, { context: { status: res.statusCode } }));
        });
      });
      ws.once('error', (cause) => reject(new ApiError('DAEMON_UNAVAILABLE', `the console WebSocket of VM ${name} failed`, { cause })));
    });
    return createWebSocketStream(ws);
  }

  /** Writes the serial log to `out` (follow: while the VM runs); resolves with the bytes written. */
  streamLogs(name: string, out: NodeJS.WritableStream, follow: boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest({ socketPath: this.socket, path: `/v1/vms/${encodeURIComponent(name)}/logs${follow ? '?follow=1' : ''}`, agent: false }, (res) => {
        if ((res.statusCode ?? 0) >= 400) {
          let body = '';
          res.on('data', (c: Buffer) => { body += c.toString(); });
          res.on('end', () => {
            const e = (() => { try { return (JSON.parse(body) as ErrorBody).error; } catch { return undefined; } })();
            reject(new WardenError(e?.code ?? 'DAEMON_BAD_RESPONSE', e?.message ?? `GET logs answered ${res.statusCode}`, { context: { status: res.statusCode } }));
          });
          return;
        }
        let n = 0;
        res.on('data', (c: Buffer) => { n += c.length; out.write(c); });
        res.on('end', () => resolve(n));
        res.on('error', reject);
      });
      req.on('error', (cause) => reject(new ApiError('DAEMON_UNAVAILABLE', `the daemon at ${this.socket} does not answer`, { cause })));
      req.end();
    });
  }

  async qmp(name: string, execute: string, args?: Record<string, unknown>): Promise<unknown> {
    return (await this.json<{ return: unknown }>('POST', `/v1/vms/${encodeURIComponent(name)}/qmp`, { execute, ...(args === undefined ? {} : { arguments: args }) })).body.return;
  }
}
