/**
 * @module api/http-auth: the credentials of the HTTPS listener: one-time login codes (in
 * memory, short-lived, used once), browser sessions (in memory, with a CSRF token each) and
 * bearer tokens (kept hashed, one file per token under STATE/auth/tokens, so a daemon
 * restart keeps them and a revoke is an unlink).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeSync, fsyncSync, closeSync, constants as C } from 'node:fs';
import { join } from 'node:path';
import { WardenError } from '../errors/index.js';

/** Who a credential speaks for: the uid it was made for and the role that uid had then. */
export interface HttpIdentity {
  uid: number;
  role: 'admin' | 'user';
  /** How the request proved it: a session cookie (browser) or a bearer token. */
  via: 'session' | 'token';
}

export interface SessionInfo {
  id: string;
  uid: number;
  role: HttpIdentity['role'];
  csrf: string;
  expiresAt: number;
}

export interface TokenInfo {
  id: string;
  name: string;
  uid: number;
  role: HttpIdentity['role'];
  createdAt: string;
}

export interface AuthOptions {
  /** Directory for the token files (0700; made if missing). */
  dir: string;
  /** Milliseconds a login code stays valid (default 60 s). */
  codeTtlMs?: number;
  /** Milliseconds a session lives without use (default 12 h). */
  sessionTtlMs?: number;
  now?: () => number;
}

export const TOKEN_PREFIX = 'wdn_';

const secret = (): string => randomBytes(32).toString('base64url');
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

export class AuthError extends WardenError {}

export class AuthStore {
  private readonly codes = new Map<string, { uid: number; role: HttpIdentity['role']; expiresAt: number }>();
  private readonly sessions = new Map<string, SessionInfo>();
  private readonly tokenDir: string;
  private readonly now: () => number;

  constructor(private readonly o: AuthOptions) {
    this.tokenDir = join(o.dir, 'tokens');
    this.now = o.now ?? Date.now;
    mkdirSync(this.tokenDir, { recursive: true, mode: 0o700 });
  }

  /** A code for `warden ui --url`: valid once, for codeTtlMs, for this uid and role. Only its hash is kept. */
  createLoginCode(uid: number, role: HttpIdentity['role']): { code: string; expiresAt: number } {
    this.sweep();
    const code = secret();
    const expiresAt = this.now() + (this.o.codeTtlMs ?? 60_000);
    this.codes.set(sha256(code), { uid, role, expiresAt });
    return { code, expiresAt };
  }

  /** Trades a login code for a new session; the code is gone whatever the outcome. AUTH_CODE_INVALID if unknown, used or expired. */
  redeemLoginCode(code: string): SessionInfo {
    const key = sha256(code);
    const entry = this.codes.get(key);
    this.codes.delete(key);
    if (entry === undefined || entry.expiresAt < this.now()) {
      throw new AuthError('AUTH_CODE_INVALID', 'logging in with a one-time code failed: the code is unknown, already used or expired', {
        suggestions: ['run `warden ui --url` again for a new login URL'],
      });
    }
    const s: SessionInfo = { id: secret(), uid: entry.uid, role: entry.role, csrf: secret(), expiresAt: this.now() + this.sessionTtl() };
    this.sessions.set(sha256(s.id), s);
    return s;
  }

  /** The live session for a cookie value, its lifetime extended; undefined when unknown or expired. */
  session(id: string): SessionInfo | undefined {
    const key = sha256(id);
    const s = this.sessions.get(key);
    if (s === undefined) return undefined;
    if (s.expiresAt < this.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    s.expiresAt = this.now() + this.sessionTtl();
    return s;
  }

  endSession(id: string): void {
    this.sessions.delete(sha256(id));
  }

  /** A new bearer token; the secret is returned once and only its hash is written. */
  createToken(uid: number, role: HttpIdentity['role'], name: string): TokenInfo & { token: string } {
    const id = randomBytes(6).toString('hex');
    const raw = secret();
    const info: TokenInfo = { id, name, uid, role, createdAt: new Date(this.now()).toISOString() };
    const fd = openSync(join(this.tokenDir, `${id}.json`), C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ ...info, hash: sha256(raw) })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return { ...info, token: `${TOKEN_PREFIX}${id}_${raw}` };
  }

  /** Every token (without hashes), or only those of `uid`. Unreadable or torn files are skipped. */
  listTokens(uid?: number): TokenInfo[] {
    const out: TokenInfo[] = [];
    for (const f of readdirSync(this.tokenDir)) {
      const t = this.readToken(f.replace(/\.json$/, ''));
      if (t !== undefined && (uid === undefined || t.uid === uid)) out.push({ id: t.id, name: t.name, uid: t.uid, role: t.role, createdAt: t.createdAt });
    }
    return out.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Removes a token; `uid` limits it to that owner's tokens. AUTH_TOKEN_NOT_FOUND otherwise. */
  revokeToken(id: string, uid?: number): void {
    const t = /^[0-9a-f]{12}$/.test(id) ? this.readToken(id) : undefined;
    if (t === undefined || (uid !== undefined && t.uid !== uid)) {
      throw new AuthError('AUTH_TOKEN_NOT_FOUND', `revoking token ${id} failed: no such token of yours`, { context: { id } });
    }
    rmSync(join(this.tokenDir, `${id}.json`), { force: true });
  }

  /** The token a bearer string stands for, or undefined. */
  checkToken(bearer: string): TokenInfo | undefined {
    const m = /^wdn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(bearer);
    if (m === null) return undefined;
    const t = this.readToken(m[1]!);
    return t !== undefined && sameHash(t.hash, sha256(m[2]!)) ? t : undefined;
  }

  private readToken(id: string): (TokenInfo & { hash: string }) | undefined {
    try {
      const t = JSON.parse(readFileSync(join(this.tokenDir, `${id}.json`), 'utf8')) as TokenInfo & { hash: string };
      return typeof t.hash === 'string' && t.id === id && Number.isInteger(t.uid) ? t : undefined;
    } catch {
      return undefined;
    }
  }

  private sessionTtl(): number {
    return this.o.sessionTtlMs ?? 12 * 3600_000;
  }

  /** Forgets expired codes and sessions, so a flood of `ui --url` calls cannot grow memory without end. */
  private sweep(): void {
    const now = this.now();
    for (const [k, v] of this.codes) if (v.expiresAt < now) this.codes.delete(k);
    for (const [k, v] of this.sessions) if (v.expiresAt < now) this.sessions.delete(k);
  }
}
