/** @module test/api/helpers: the daemon as the README starts it (a child process on a private socket and state root), SSE and HTTP over its socket, users for access tests. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { groupGid } from '../../src/api/auth.js';
import type { TestContext } from 'node:test';
import { run, type Io } from '../../src/cli/index.js';
import { repoRoot } from '../../src/vm/index.js';
import { testEnv, vmName, type TestEnv } from '../../src/vm/testing.js';

export interface DaemonProc {
  socket: string;
  proc: ChildProcess;
  stderr: () => string;
  /** SIGTERM, and wait for it to exit. */
  stop(): Promise<void>;
}

/** A directory for the socket that members of `warden` can traverse (the socket itself is 0660 root:warden). */
export function socketDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-api-sock-'));
  const gid = groupGid('warden');
  if (gid !== null) { chownSync(dir, 0, gid); chmodSync(dir, 0o750); }
  return dir;
}

/** `warden daemon --socket S --state-dir R` in the background; resolves once it serves. */
/** `wrap`: a command the daemon runs under (nsenter --net=... -- to serve from a test netns). */
export async function startDaemonProc(socket: string, stateDir: string, env: NodeJS.ProcessEnv = {}, wrap: string[] = []): Promise<DaemonProc> {
  const bin = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
  const proc = spawn(wrap[0] ?? process.execPath, [...wrap.slice(1), ...(wrap.length > 0 ? [process.execPath] : []), bin, 'daemon', '--socket', socket, '--state-dir', stateDir], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 30 s: ${err}`)), 30_000);
    proc.stderr!.on('data', () => { if (err.includes('serving ')) { clearTimeout(timer); resolve(); } });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the daemon exited (${code}): ${err}`)); });
  });
  return {
    socket, proc, stderr: () => err,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await gone;
    },
  };
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export function http(socket: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, method, path, agent: false, headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export interface SseEvent { id?: string; event?: string; data: any } // eslint-disable-line @typescript-eslint/no-explicit-any

/** An event stream reader: every event so far, and a wait for the next matching one. */
export function sse(socket: string, path: string, headers: Record<string, string> = {}) {
  const events: SseEvent[] = [];
  const waiters: Array<{ match: (e: SseEvent) => boolean; resolve: (e: SseEvent) => void }> = [];
  let buf = '';
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => { subscribed = r; });
  const req = request({ socketPath: socket, path, agent: false, headers }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (c: string) => {
      subscribed(); // the daemon's first line comes once the subscription is in place
      buf += c;
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const e: SseEvent = { data: null };
        for (const line of block.split('\n')) {
          if (line.startsWith('id: ')) e.id = line.slice(4);
          else if (line.startsWith('event: ')) e.event = line.slice(7);
          else if (line.startsWith('data: ')) e.data = JSON.parse(line.slice(6));
        }
        if (e.data === null) continue;
        events.push(e);
        for (const w of [...waiters]) if (w.match(e)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(e); }
      }
    });
  });
  req.on('error', () => undefined);
  req.end();
  return {
    events,
    ready,
    next(match: (e: SseEvent) => boolean, timeoutMs: number): Promise<SseEvent> {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events.map((x) => x.event))}`)), timeoutMs);
        waiters.push({ match, resolve: (e) => { clearTimeout(timer); resolve(e); } });
      });
    },
    close: () => req.destroy(),
  };
}

/** A throw-away system user (no home), in `groups`; removed by the returned function. */
export function makeUser(name: string, groups: string[]): { uid: number; gid: number; remove: () => void } {
  spawnSync('userdel', [name]);
  // No subordinate ids: /etc/subuid ranges of a new user would overlap the jailer's uid range,
  // and every VM start on the host is refused while they exist (JAIL_UID_RANGE_CONFLICT).
  const r = spawnSync('useradd', ['--no-create-home', '--shell', '/usr/sbin/nologin', '-K', 'SUB_UID_COUNT=0', '-K', 'SUB_GID_COUNT=0',
    ...(groups.length ? ['-G', groups.join(',')] : []), name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr}`);
  const id = (flag: string): number => Number(spawnSync('id', [flag, name], { encoding: 'utf8' }).stdout.trim());
  return { uid: id('-u'), gid: id('-g'), remove: () => { spawnSync('userdel', [name]); } };
}

/** curl as another user (setpriv, with that user's groups): [HTTP status, body]; status 0 when it could not connect. */
export function curlAs(user: string, socket: string, method: string, path: string, body?: string): { status: number; json: any } { // eslint-disable-line @typescript-eslint/no-explicit-any
  const args = ['--reuid', user, '--regid', user, '--init-groups', 'curl', '-s', '--unix-socket', socket, '-X', method, '-w', '\n%{http_code}',
    ...(body === undefined ? [] : ['-H', 'content-type: application/json', '--data-binary', body]), `http://warden${path}`];
  const r = spawnSync('setpriv', args, { encoding: 'utf8' });
  const lines = r.stdout.trimEnd().split('\n');
  const status = Number(lines.pop() ?? 0);
  let json: unknown = null;
  try { json = JSON.parse(lines.join('\n')); } catch { /* empty */ }
  return { status, json };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** An Io that keeps what a CLI command printed. */
export function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

export interface DaemonFixture {
  env: TestEnv;
  socket: string;
  daemon: DaemonProc;
  /** The test's VM name (pid-suffixed). */
  name: string;
  /** `warden ARGS --state-dir ROOT` in process: the CLI routes it to the daemon that owns the root. */
  cli(...args: string[]): Promise<{ code: number; io: ReturnType<typeof capture> }>;
}

/**
 * A test's own daemon, started as the README starts it: a 0700 test env, a socket directory,
 * `warden daemon` on them. After the test the VM is deleted (force), the daemon stopped and
 * both directories removed, also when the start itself failed.
 */
export async function daemonFixture(t: TestContext, envPrefix: string, vmPrefix: string): Promise<DaemonFixture> {
  const env = testEnv(envPrefix);
  const sdir = socketDir();
  const socket = join(sdir, 'warden.sock');
  const daemon = await startDaemonProc(socket, env.stateRoot).catch((err: unknown) => { env.cleanup(); removeDir(sdir); throw err; });
  const name = vmName(vmPrefix);
  t.after(async () => {
    await http(socket, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    await daemon.stop();
    env.cleanup();
    removeDir(sdir);
  });
  const cli = async (...args: string[]): Promise<{ code: number; io: ReturnType<typeof capture> }> => {
    const io = capture();
    return { code: await run([...args, '--state-dir', env.stateRoot], io), io };
  };
  return { env, socket, daemon, name, cli };
}
