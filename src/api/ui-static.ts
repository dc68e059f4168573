/**
 * @module api/ui-static: the web console's routes on the HTTPS listener: the bundled files
 * under /ui/ (built by scripts/build-ui.mjs into dist/ui, served from memory with a strict
 * Content-Security-Policy), and /ui/login, which trades a one-time code for a session cookie.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { WardenError } from '../errors/index.js';
import { AuthError, type AuthStore } from './http-auth.js';
import { sessionCookies } from './http-guard.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.map': 'application/json', '.txt': 'text/plain; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png',
};

/** Same-origin everything; inline styles only because xterm.js and noVNC set them. No CDN, no framing. */
export const UI_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** dist/ui next to this compiled file (dist/src/api → dist/ui). */
export function defaultUiDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'ui');
}

/** Every file of the bundle, read once: the UI is a few files, and serving from memory keeps it out of the request path's syscalls. */
function loadBundle(dir: string): Map<string, { body: Buffer; type: string }> {
  if (!existsSync(join(dir, 'index.html'))) {
    throw new WardenError('HOST_UI_MISSING', `the web console is not built: ${dir}/index.html is missing`, { suggestions: ['npm run build (or scripts/setup.sh)'] });
  }
  const files = new Map<string, { body: Buffer; type: string }>();
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else files.set(relative(dir, p), { body: readFileSync(p), type: TYPES[extname(f)] ?? 'application/octet-stream' });
    }
  };
  walk(dir);
  return files;
}

function securityHeaders(reply: FastifyReply): FastifyReply {
  return reply.header('content-security-policy', UI_CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY').header('strict-transport-security', 'max-age=31536000');
}

/** Registers /, /ui/, /ui/* and /ui/login. These need no session (the page itself asks /v1 who you are). */
export function registerUi(app: FastifyInstance, o: { auth: AuthStore; uiDir?: string }): void {
  const files = loadBundle(o.uiDir ?? defaultUiDir());
  const index = files.get('index.html')!;
  app.get('/', (_req, reply) => reply.redirect('/ui/', 303));
  app.get('/ui', (_req, reply) => reply.redirect('/ui/', 303));
  app.get('/ui/', (_req, reply) => securityHeaders(reply).header('cache-control', 'no-store').type(index.type).send(index.body));
  app.get<{ Querystring: { code?: string } }>('/ui/login', (req, reply) => {
    securityHeaders(reply).header('cache-control', 'no-store');
    try {
      const s = o.auth.redeemLoginCode(String(req.query.code ?? ''));
      // 303 to a URL without the code: it leaves the address bar and the history
      return reply.header('set-cookie', sessionCookies(s)).redirect('/ui/', 303);
    } catch (err) {
      if (!(err instanceof AuthError)) throw err;
      return reply.code(401).type('text/html; charset=utf-8').send(
        '<!doctype html><title>qemu-warden: login failed</title><h1>This login link is used up or has expired</h1><p>Run <code>warden ui --url</code> on the host for a new one.</p>');
    }
  });
  app.get<{ Params: { '*': string } }>('/ui/*', (req, reply) => {
    const f = files.get(req.params['*']);
    if (f === undefined) return reply.code(404).type('text/plain').send('not found');
    return securityHeaders(reply).header('cache-control', 'no-cache').type(f.type).send(f.body);
  });
}

/** Whether a path is one of the UI's own routes (served without a session). */
export function isUiPath(url: string): boolean {
  const path = url.split('?')[0]!;
  return path === '/' || path === '/ui' || path.startsWith('/ui/');
}
