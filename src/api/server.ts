/**
 * @module api/server: wardend: the DaemonService behind the /v1 app on a unix socket
 * (mode 0660, group `warden` when it exists), until SIGTERM or SIGINT. Stopping the
 * daemon leaves every VM running; the next daemon adopts them.
 */
import { chmodSync, chownSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { dirname } from 'node:path';
import { DaemonService, defaultStateRoot } from '../vm/index.js';
import { USER_GROUP, groupGid } from './auth.js';
import { buildApp, type App } from './app.js';
import { ApiError } from './errors.js';

export const DEFAULT_SOCKET = '/run/warden/warden.sock';
export const API_VERSION = '0.1.0';

/** The socket path: the flag, else $WARDEN_SOCKET, else /run/warden/warden.sock. */
export function defaultSocket(env: NodeJS.ProcessEnv = process.env): string {
  return env['WARDEN_SOCKET'] || DEFAULT_SOCKET;
}

export interface DaemonOptions {
  socket?: string | undefined;
  stateDir?: string | undefined;
  log?: (msg: string) => void;
}

export interface RunningDaemon {
  socket: string;
  stateRoot: string;
  service: DaemonService;
  app: App;
  close(): Promise<void>;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** A socket file nobody answers on is left over from a daemon that died: removed. One that answers is another daemon's. */
async function clearSocket(path: string): Promise<void> {
  try { statSync(path); } catch { return; }
  if (await answers(path)) {
    throw new ApiError('DAEMON_UNAVAILABLE', `another daemon already serves ${path}`, { context: { socket: path }, suggestions: ['stop it first, or choose another --socket'] });
  }
  rmSync(path, { force: true });
}

export async function startDaemon(o: DaemonOptions = {}): Promise<RunningDaemon> {
  const socket = o.socket ?? defaultSocket();
  const stateRoot = o.stateDir ?? defaultStateRoot();
  const log = o.log ?? ((m: string) => process.stderr.write(`wardend: ${m}\n`));
  mkdirSync(dirname(socket), { recursive: true, mode: 0o755 });
  await clearSocket(socket);
  const service = await DaemonService.open({ stateDir: stateRoot, socket, log });
  const app = buildApp({ service, version: API_VERSION });
  try {
    await app.server.listen({ path: socket, backlog: 4096 }); // a burst of clients queues instead of failing with EAGAIN
    chmodSync(socket, 0o660);
    const gid = groupGid(USER_GROUP);
    if (gid !== null && process.getuid?.() === 0) chownSync(socket, 0, gid);
  } catch (err) {
    await service.close();
    throw err;
  }
  log(`serving ${stateRoot} on ${socket} (${service.supervisors.size} VMs adopted)`);
  let closing: Promise<void> | undefined;
  return {
    socket, stateRoot, service, app,
    close: () => (closing ??= (async () => {
      await app.server.close();
      await service.close();
    })()),
  };
}

/** Runs the daemon in the foreground until SIGTERM/SIGINT. */
export async function runDaemon(o: DaemonOptions = {}): Promise<void> {
  const d = await startDaemon(o);
  await new Promise<void>((resolve) => {
    const stop = (sig: string): void => {
      process.stderr.write(`wardend: ${sig}: stopping (VMs keep running)\n`);
      void d.close().then(resolve, resolve);
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
