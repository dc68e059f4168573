/**
 * @module ui/api: the daemon's HTTP API as the pages use it: JSON calls with the session's
 * CSRF token, typed errors, the event stream, and the WebSocket URLs of console and display.
 * Same origin only: the page is served by the daemon that answers these calls.
 */

export interface ApiErrorBody { code: string; message: string; details?: Record<string, unknown> }

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

/** A located spec problem, as the daemon reports it (SPEC_* errors carry them in details.issues). */
export interface SpecIssue { code: string; line: number; col: number; path: string; message: string; suggestion?: string }

export interface VmRow {
  name: string;
  phase: string;
  pid: number | null;
  uid: number | null;
  owner: number | null;
  lastExit: string | null;
}

export interface Who { uid: number; role: string; version: string }

function csrf(): string {
  const m = /(?:^|;\s*)warden_csrf=([^;]+)/.exec(document.cookie);
  return m?.[1] ?? '';
}

/** One call; JSON in and out unless `body` is a string (sent as YAML). Throws ApiError with the daemon's code. */
export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'x-warden-csrf': csrf(), accept: 'application/json' };
  let payload: string | undefined;
  if (typeof body === 'string') { headers['content-type'] = 'application/yaml'; payload = body; }
  else if (body !== undefined) { headers['content-type'] = 'application/json'; payload = JSON.stringify(body); }
  const res = await fetch(path, { method, headers, credentials: 'same-origin', ...(payload === undefined ? {} : { body: payload }) });
  const text = await res.text();
  const data = text === '' ? undefined : (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) as unknown : text;
  if (!res.ok) {
    const e = (data as { error?: ApiErrorBody } | undefined)?.error;
    throw new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? (typeof data === 'string' ? data : res.statusText), e?.details ?? {});
  }
  return data as T;
}

const enc = encodeURIComponent;

export async function whoami(): Promise<Who> {
  const r = await call<{ version?: string; caller?: { uid?: number; role?: string; admin?: boolean } }>('GET', '/v1');
  const c = r.caller ?? {};
  return { uid: c.uid ?? -1, role: c.role ?? (c.admin === true ? 'admin' : 'user'), version: r.version ?? '?' };
}

/** Whatever shape a VM comes in (a record or a summary), the row the list shows. */
export function toRow(v: Record<string, unknown>): VmRow {
  const run = v['run'] as { qemu?: { pid?: number }; uid?: number } | undefined;
  const last = v['lastExit'] as { reason?: string; detail?: string } | string | null | undefined;
  const lastExit = typeof last === 'string' ? last : last ? (last.detail?.startsWith(last.reason ?? '') ? last.detail : `${last.reason}: ${last.detail ?? ''}`) : null;
  return {
    name: String(v['name']), phase: String(v['phase'] ?? 'unknown'),
    pid: (v['pid'] as number | undefined) ?? run?.qemu?.pid ?? null, uid: (v['uid'] as number | undefined) ?? run?.uid ?? null,
    owner: (v['owner'] as number | undefined) ?? null, lastExit: lastExit ?? null,
  };
}

export async function listVms(): Promise<VmRow[]> {
  const r = await call<unknown>('GET', '/v1/vms');
  const items = Array.isArray(r) ? r : ((r as { vms?: unknown[]; items?: unknown[] }).vms ?? (r as { items?: unknown[] }).items ?? []);
  return (items as Array<Record<string, unknown>>).map((x) => toRow((x['record'] as Record<string, unknown> | null) ?? x));
}

export async function getVm(name: string): Promise<Record<string, unknown>> {
  const r = await call<Record<string, unknown>>('GET', `/v1/vms/${enc(name)}`);
  return (r['vm'] as Record<string, unknown> | undefined) ?? r;
}

/** Runs a lifecycle action and waits for its operation to finish; resolves with the final operation. */
export async function act(name: string, action: string): Promise<unknown> {
  if (action === 'delete') return call('DELETE', `/v1/vms/${enc(name)}?force=1`);
  return call('PUT', `/v1/vms/${enc(name)}/state?wait=120`, { action });
}

export function createVm(specText: string): Promise<Record<string, unknown>> {
  return call('POST', '/v1/vms', specText);
}

/** The VM's inspection: phase, plan (argv, trace, fds, jail, manifest), the process seen from outside. */
export function inspect(name: string): Promise<Record<string, unknown>> {
  return call('GET', `/v1/vms/${enc(name)}/inspect`);
}

export async function serialLog(name: string): Promise<string> {
  const r = await call<unknown>('GET', `/v1/vms/${enc(name)}/logs`);
  return typeof r === 'string' ? r : JSON.stringify(r, null, 2);
}

/** The daemon's event types (src/vm/events.ts); SSE delivers a named event only to a listener of that name. */
const EVENT_TYPES = ['created', 'deleted', 'started', 'stopped', 'paused', 'resumed', 'restarting', 'guest-panicked', 'block-io-error', 'device-deleted', 'operation', 'resync', 'helper-died'];

/** Subscribes to the daemon's events (SSE); the browser resumes with Last-Event-ID after a drop. */
export function events(onEvent: (e: { type: string; vm?: string; [k: string]: unknown }) => void): EventSource {
  const es = new EventSource('/v1/events', { withCredentials: true });
  const handle = (m: MessageEvent<string>): void => {
    try { onEvent({ type: m.type, ...(JSON.parse(m.data) as Record<string, unknown>) }); } catch { /* a comment or keep-alive */ }
  };
  es.onmessage = handle;
  for (const t of EVENT_TYPES) es.addEventListener(t, handle as EventListener);
  return es;
}

export function wsUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${path}`;
}

/** The console WebSocket's URL: a one-shot ticket (30 s, bound to VM and uid) asked for with the session first; force takes the console over. */
export async function consoleUrl(name: string, force: boolean): Promise<string> {
  const t = await call<{ path: string }>('POST', `/v1/vms/${enc(name)}/console${force ? '?force=1' : ''}`, {});
  return wsUrl(t.path);
}
export const displayUrl = (name: string): string => wsUrl(`/v1/vms/${enc(name)}/display`);
