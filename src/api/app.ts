/**
 * @module api/app: the /v1 HTTP application (fastify) over a VmService: content types and
 * the body limit, the caller from peer credentials on every request, validation with the
 * route table's zod schemas, and one error shape. Handlers are in handlers.ts.
 */
import { fastify, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { VmService } from '../vm/index.js';
import { Operations } from '../vm/index.js';
import { authorize, callerOf, type Caller } from './auth.js';
import { ApiError, errorResponse } from './errors.js';
import { HANDLERS, type HandlerCtx } from './handlers.js';
import { ConsoleHub } from './console.js';
import type { DaemonCounters } from './metrics.js';
import { ROUTES, type RouteDef } from './routes.js';

/** The largest request body accepted (a spec is a few KiB). */
export const BODY_LIMIT = 20 * 1024 * 1024;
export const SPEC_TYPES = ['application/json', 'application/yaml', 'application/x-yaml', 'text/yaml'];

export interface AppOptions {
  service: VmService;
  version: string;
  /** Who is calling; default: SO_PEERCRED of the unix socket. */
  callerOf?: (req: FastifyRequest) => Caller;
}

export interface App {
  server: FastifyInstance;
  counters: DaemonCounters;
  operations: Operations;
  consoles: ConsoleHub;
}

function check<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value ?? {});
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => ({ path: [where, ...i.path.map(String)].join('.'), message: i.message, code: i.code }));
  throw new ApiError('API_INVALID_REQUEST', `the request's ${where} is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { context: { issues } });
}

function jsonBody(raw: unknown): unknown {
  if (raw === undefined || raw === '') throw new ApiError('API_INVALID_REQUEST', 'a JSON body is required', { suggestions: ['send Content-Type: application/json with a JSON object'] });
  try {
    return JSON.parse(String(raw));
  } catch (cause) {
    throw new ApiError('API_BAD_JSON', 'the request body is not valid JSON', { cause });
  }
}

export function buildApp(o: AppOptions): App {
  const server = fastify({ bodyLimit: BODY_LIMIT, logger: false, return503OnClosing: true, forceCloseConnections: true });
  const operations = new Operations(`op-${Date.now().toString(36)}`);
  let sse = 0;
  const counters: DaemonCounters = { requests: new Map(), eventsDropped: 0, sseClients: () => sse };
  const identify = o.callerOf ?? ((req: FastifyRequest) => callerOf(req.raw.socket));

  // Bodies are kept as text: the spec parser locates errors by line and column in it.
  server.removeAllContentTypeParsers();
  server.addContentTypeParser(SPEC_TYPES, { parseAs: 'string' }, (_req, body, done) => done(null, body));

  server.setErrorHandler((err, _req, reply) => {
    const { status, body } = errorResponse(err);
    void reply.code(status).type('application/json').send(body);
  });
  server.setNotFoundHandler((req, reply) => {
    const { status, body } = errorResponse(new ApiError('API_NOT_FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]}`, { suggestions: ['GET /v1/openapi.json lists them'] }));
    void reply.code(status).send(body);
  });
  server.addHook('onResponse', async (req, reply) => {
    const key = `route="${req.routeOptions.url ?? 'none'}",code="${reply.statusCode}"`;
    counters.requests.set(key, (counters.requests.get(key) ?? 0) + 1);
  });

  const consoles = new ConsoleHub(o.service);
  consoles.listen(server.server);
  server.addHook('onClose', async () => { await consoles.closeAll(); });
  const ctxBase = { service: o.service, operations, consoles, counters, version: o.version, sse: { opened: () => { sse++; }, closed: () => { sse--; } } };
  for (const r of ROUTES) {
    server.route({
      method: r.method, url: r.path,
      handler: async (req: FastifyRequest, reply: FastifyReply) => {
        const caller = identify(req);
        authorize(caller, r.permission === 'vm:qmp' ? 'vm:qmp' : 'host:read');
        const ctx: HandlerCtx = {
          ...ctxBase, caller, req, reply, svc: o.service.as({ uid: caller.uid, gid: caller.gid, pid: caller.pid }),
          params: r.params ? check(r.params, req.params, 'path') as Record<string, unknown> : {},
          query: r.query ? check(r.query, req.query, 'query') as Record<string, unknown> : {},
          body: bodyOf(r, req.body),
        };
        const out = await HANDLERS[r.id]!(ctx);
        if (out === 'hijacked') return reply;
        return reply.code(out.status).send(out.body);
      },
    });
  }
  return { server, counters, operations, consoles };
}

function bodyOf(r: RouteDef, raw: unknown): unknown {
  if (r.body === undefined) return undefined;
  if (r.body === 'spec') return raw;
  return check(r.body, jsonBody(raw), 'body');
}
