/**
 * @module api/http-daemon: `warden daemon --http ADDR:PORT`: the same /v1 app as the unix
 * socket's, on TLS, with callers from sessions and bearer tokens instead of peer
 * credentials, plus the web console, the console and display WebSockets behind the guard;
 * and the unix socket's routes that hand out login URLs and bearer tokens (peer credentials
 * are what a login code and a token are bound to).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DaemonService } from '../vm/index.js';
import { buildApp, type App } from './app.js';
import { authorize, callerOf, type Caller } from './auth.js';
import { AuthError, AuthStore, type HttpIdentity } from './http-auth.js';
import { displayRoute } from './http-display.js';
import { identityOf, installGuard, listenHttps, loginUrl, refuseUpgrade, serveUpgrades, type UpgradeRoute } from './http-server.js';
import { loadTls, parseHttpListen, type TlsMaterial } from './http-tls.js';
import { registerUi } from './ui-static.js';

export interface WebOptions {
  /** ADDR:PORT to serve HTTPS on. */
  listen: string;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
}

export interface RunningWeb {
  origin: string;
  auth: AuthStore;
  tls: TlsMaterial;
  app: App;
  close(): Promise<void>;
}

/** The API's caller for an HTTPS identity: the uid and role the session or token was made for. */
export function httpsCaller(who: HttpIdentity | undefined): Caller {
  if (who === undefined) throw new AuthError('AUTH_REQUIRED', 'this request needs credentials: a session or a bearer token');
  return { uid: who.uid, gid: who.uid, pid: 0, admin: who.role === 'admin', member: true, groups: [] };
}

export async function startWeb(o: { service: DaemonService; stateRoot: string; version: string; web: WebOptions; shared?: Pick<App, 'operations' | 'consoles'> }): Promise<RunningWeb> {
  const listen = parseHttpListen(o.web.listen);
  const tls = loadTls(listen, o.stateRoot, { ...(o.web.tlsCert ? { cert: o.web.tlsCert } : {}), ...(o.web.tlsKey ? { key: o.web.tlsKey } : {}) });
  const auth = new AuthStore({ dir: join(o.stateRoot, 'auth') });
  const app = buildApp({
    service: o.service, version: o.version, https: { cert: tls.cert, key: tls.key }, callerOf: (req: FastifyRequest) => httpsCaller(identityOf(req)),
    ...(o.shared === undefined ? {} : { shared: { operations: o.shared.operations, consoles: o.shared.consoles } }),
  });
  installGuard(app.server, auth);
  registerUi(app.server, { auth });
  serveUpgrades(app.server.server, auth, [consoleRoute(app), displayRoute({
    qmpFor: async (vm, who) => {
      const rec = await o.service.get(vm);
      authorize(httpsCaller(who), 'vm:console', { name: vm, owner: rec.owner });
      return o.service.qmpSession(vm);
    },
  })]);
  const origin = await listenHttps(app.server, listen);
  return { origin, auth, tls, app, close: () => app.server.close() };
}

/** The serial console WebSocket on HTTPS: the guard has checked session and Origin; the ticket is checked by the console hub as on the unix socket. */
function consoleRoute(app: App): UpgradeRoute {
  return {
    match: /^\/v1\/vms\/([^/]+)\/console\/ws$/,
    handle(req: IncomingMessage, socket, head, who) {
      app.consoles.upgrade(req, socket as Socket, head, httpsCaller(who)).catch((err: unknown) => refuseUpgrade(socket, err));
    },
  };
}

/**
 * On the unix socket: POST /v1/ui/login (a one-time login URL for the caller), and
 * GET|POST /v1/tokens, DELETE /v1/tokens/:id (bearer tokens; admins see and revoke all).
 */
export function registerAuthRoutes(app: FastifyInstance, web: RunningWeb): void {
  const caller = (req: FastifyRequest): Caller => {
    const c = callerOf(req.raw.socket);
    authorize(c, 'host:read');
    return c;
  };
  const role = (c: Caller): HttpIdentity['role'] => (c.admin ? 'admin' : 'user');
  app.post('/v1/ui/login', async (req, reply) => {
    const c = caller(req);
    const { code, expiresAt } = web.auth.createLoginCode(c.uid, role(c));
    return reply.code(201).send({ url: loginUrl(web.origin, code), expiresAt: new Date(expiresAt).toISOString(), uid: c.uid, role: role(c), certificate: { sha256: web.tls.fingerprint, source: web.tls.source } });
  });
  app.get('/v1/tokens', async (req) => {
    const c = caller(req);
    return { tokens: web.auth.listTokens(c.admin ? undefined : c.uid) };
  });
  app.post('/v1/tokens', async (req, reply) => {
    const c = caller(req);
    let name = 'token';
    if (typeof req.body === 'string' && req.body !== '') {
      try { name = String((JSON.parse(req.body) as { name?: unknown }).name ?? name); } catch { /* a body that is not JSON names nothing */ }
    }
    return reply.code(201).send(web.auth.createToken(c.uid, role(c), name.slice(0, 64)));
  });
  app.delete<{ Params: { id: string } }>('/v1/tokens/:id', async (req) => {
    const c = caller(req);
    web.auth.revokeToken(req.params.id, c.admin ? undefined : c.uid);
    return { revoked: req.params.id };
  });
}
