/**
 * @module api/http-guard: who an HTTPS request is, decided from its headers alone: a bearer
 * token, or a session cookie plus (for anything that changes state) the session's CSRF token
 * in a header and a same-origin Origin; WebSocket upgrades need the session and the Origin.
 * No credentials is 401 (AUTH_REQUIRED), a bad Origin or CSRF token 403.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { AuthError, type AuthStore, type HttpIdentity, type SessionInfo } from './http-auth.js';

export const SESSION_COOKIE = 'warden_session';
export const CSRF_COOKIE = 'warden_csrf';
export const CSRF_HEADER = 'x-warden-csrf';

export interface GuardRequest {
  method: string;
  headers: IncomingHttpHeaders;
  /** A WebSocket upgrade: a browser cannot add headers, so the Origin is what protects it. */
  upgrade?: boolean;
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

/** The identity of the request, or an AuthError saying why not (its code gives 401 or 403). */
export function authenticate(req: GuardRequest, store: AuthStore): HttpIdentity {
  const auth = req.headers.authorization;
  if (auth !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    const t = m === null ? undefined : store.checkToken(m[1]!);
    if (t === undefined) throw new AuthError('AUTH_TOKEN_INVALID', 'authenticating the request failed: the bearer token is malformed, unknown or revoked');
    return { uid: t.uid, role: t.role, via: 'token' };
  }
  const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
  const s = id === undefined ? undefined : store.session(id);
  if (s === undefined) {
    throw new AuthError('AUTH_REQUIRED', 'this request needs credentials: a session (log in with the URL from `warden ui --url`) or a bearer token', {
      suggestions: ['warden ui --url', 'warden token create, then: Authorization: Bearer <token>'],
    });
  }
  checkOrigin(req);
  if (!SAFE.has(req.method.toUpperCase()) && !req.upgrade) checkCsrf(req, s);
  return { uid: s.uid, role: s.role, via: 'session' };
}

/** The Origin must be this very server (scheme https, the Host the browser addressed); required on upgrades and state changes. */
function checkOrigin(req: GuardRequest): void {
  const origin = req.headers.origin;
  if (origin === undefined) {
    // state changes without an Origin are still covered by the CSRF header
    if (req.upgrade === true) throw new AuthError('AUTH_ORIGIN', 'opening a WebSocket failed: the request has no Origin header');
    return;
  }
  const host = req.headers.host;
  if (host === undefined || origin !== `https://${host}`) {
    throw new AuthError('AUTH_ORIGIN', `the request came from origin ${origin}, not from this server (https://${host ?? '?'})`, { context: { origin, host } });
  }
}

function checkCsrf(req: GuardRequest, s: SessionInfo): void {
  const got = req.headers[CSRF_HEADER];
  if (typeof got !== 'string' || got !== s.csrf) {
    throw new AuthError('AUTH_CSRF', `a state-changing ${req.method} request lacks the session's CSRF token (header ${CSRF_HEADER})`);
  }
}

/** Set-Cookie values for a new session: the session itself (HttpOnly) and its CSRF token (readable by the page, sent back in a header). */
export function sessionCookies(s: SessionInfo): string[] {
  const attrs = 'Path=/; Secure; SameSite=Strict';
  return [`${SESSION_COOKIE}=${s.id}; ${attrs}; HttpOnly`, `${CSRF_COOKIE}=${s.csrf}; ${attrs}`];
}
