/**
 * @module api/http-server: the HTTPS listener (`warden daemon --http ADDR:PORT`): a fastify
 * app on TLS only, with the guard in front of everything but the UI's own files, the UI
 * routes, the daemon's /v1 routes registered by the caller, and WebSocket upgrades that pass
 * the same guard (session + Origin) before any handler sees them.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { httpStatusFor, WardenError } from '../errors/index.js';
import type { AuthStore, HttpIdentity } from './http-auth.js';
import { authenticate } from './http-guard.js';
import type { HttpListen, TlsMaterial } from './http-tls.js';
import { isUiPath, registerUi } from './ui-static.js';

/** A WebSocket endpoint: its path pattern (groups become params) and what to do once the guard let the request in. */
export interface UpgradeRoute {
  match: RegExp;
  handle(req: IncomingMessage, socket: Duplex, head: Buffer, who: HttpIdentity, params: string[]): void;
}

export interface HttpsOptions {
  listen: HttpListen;
  tls: TlsMaterial;
  auth: AuthStore;
  uiDir?: string;
  /** Registers the API (/v1 ...) on the app; each request carries its identity (identityOf). */
  routes?: (app: FastifyInstance) => void | Promise<void>;
  upgrades?: UpgradeRoute[];
  /** Largest request body (default 20 MiB, as the unix socket's). */
  bodyLimit?: number;
}

export interface HttpsServer {
  app: FastifyInstance;
  /** https://HOST:PORT as a browser addresses it (IPv6 in brackets). */
  origin: string;
  /** The one-time login URL for a code from AuthStore.createLoginCode. */
  loginUrl(code: string): string;
  close(): Promise<void>;
}

const identities = new WeakMap<IncomingMessage, HttpIdentity>();

/** Who the guard found this request to be (undefined only on the UI's own routes). */
export function identityOf(req: FastifyRequest | IncomingMessage): HttpIdentity | undefined {
  return identities.get('raw' in req ? req.raw : req);
}

export function errorBody(err: WardenError): { error: { code: string; message: string; details: Record<string, unknown> } } {
  const j = err.toJSON();
  const details: Record<string, unknown> = {};
  for (const k of ['context', 'suggestions'] as const) if (j[k] !== undefined) details[k] = j[k];
  return { error: { code: err.code, message: err.message, details } };
}

export async function startHttps(o: HttpsOptions): Promise<HttpsServer> {
  const app = Fastify({ https: { cert: o.tls.cert, key: o.tls.key }, forceCloseConnections: true, bodyLimit: o.bodyLimit ?? 20 * 1024 * 1024 }) as unknown as FastifyInstance;
  app.addHook('onRequest', async (req, reply) => {
    if (isUiPath(req.url)) return;
    try {
      identities.set(req.raw, authenticate({ method: req.method, headers: req.headers }, o.auth));
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      const status = httpStatusFor(err);
      if (status === 401) reply.header('www-authenticate', 'Bearer realm="warden"');
      return reply.code(status).send(errorBody(err));
    }
  });
  registerUi(app, { auth: o.auth, ...(o.uiDir === undefined ? {} : { uiDir: o.uiDir }) });
  if (o.routes !== undefined) await o.routes(app);
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => upgrade(o, req, socket, head));
  await app.listen({ host: o.listen.host, port: o.listen.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : o.listen.port;
  const host = o.listen.host.includes(':') ? `[${o.listen.host}]` : o.listen.host;
  const origin = `https://${host}:${port}`;
  return { app, origin, loginUrl: (code) => `${origin}/ui/login?code=${encodeURIComponent(code)}`, close: () => app.close() };
}

/** The guard for upgrades: no session or a foreign Origin ends the socket with 401/403 before any WebSocket exists. */
function upgrade(o: HttpsOptions, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const path = (req.url ?? '').split('?')[0]!;
  for (const r of o.upgrades ?? []) {
    const m = r.match.exec(path);
    if (m === null) continue;
    let who: HttpIdentity;
    try {
      who = authenticate({ method: req.method ?? 'GET', headers: req.headers, upgrade: true }, o.auth);
    } catch (err) {
      const status = err instanceof WardenError ? httpStatusFor(err) : 500;
      const body = JSON.stringify(err instanceof WardenError ? errorBody(err) : { error: { code: 'INTERNAL', message: 'upgrade failed', details: {} } });
      socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : 'Forbidden'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    identities.set(req, who);
    r.handle(req, socket, head, who, m.slice(1).map((s) => decodeURIComponent(s)));
    return;
  }
  socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
}
