/**
 * @module shim/server: the long-lived shim server: one process per containerd serves every
 * task (VM) of every namespace on one socket, publishes their events, and exits after it
 * has served no task and held no connection for a while.
 */
import { appendFileSync, chmodSync, mkdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { createConnection, type Server } from 'node:net';
import { NodeProcessRunner } from '../sys/index.js';
import type { ShimArgs } from './args.js';
import { binaryPublisher } from './events.js';
import { shimDaemon } from './manager.js';
import { shimPaths } from './names.js';
import { loadProtos } from './protos.js';
import { TaskService } from './tasks.js';
import { ttrpcServer } from './ttrpc.js';

const IDLE_CHECK_MS = 15_000;
const IDLE_CHECKS = 3;
const LOG_MAX = 4 << 20;

/** Whether something accepts connections on the unix socket `path`. */
export function canConnect(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    const done = (ok: boolean): void => { clearTimeout(timer); s.destroy(); resolve(ok); };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function listen(server: Server, path: string): Promise<NodeJS.ErrnoException | null> {
  return new Promise((resolve) => {
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e));
    server.listen(path, () => resolve(null));
  });
}

/** Listens on `path`; false when another live server already does (we lost a race and should exit). */
async function listenOnce(server: Server, path: string): Promise<boolean> {
  let err = await listen(server, path);
  if (err?.code === 'EADDRINUSE') {
    if (await canConnect(path)) return false;
    try { unlinkSync(path); } catch { /* gone meanwhile */ }
    err = await listen(server, path);
  }
  if (err !== null) throw err;
  chmodSync(path, 0o600);
  return true;
}

export async function serve(a: ShimArgs): Promise<void> {
  const paths = shimPaths(a.address);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  chmodSync(paths.dir, 0o700); // whoever reaches the socket can run VMs as root: containerd (root) only
  const log = (line: string): void => {
    try {
      if (statSync(paths.log).size > LOG_MAX) renameSync(paths.log, `${paths.log}.1`); // at most twice LOG_MAX on disk
    } catch { /* no log yet */ }
    appendFileSync(paths.log, `${new Date().toISOString()} [${process.pid}] ${line}\n`);
  };
  const protos = loadProtos();
  const runner = new NodeProcessRunner();
  const { vms, netns, paths: vmPaths, daemon } = await shimDaemon(paths.stateRoot, paths.socket, log, runner);
  const publisher = binaryPublisher(protos, a.publishBinary, a.address, log);
  const tasks = new TaskService({ vms, paths: vmPaths, protos, publisher, runner, netns, defaultNamespace: a.namespace, shimDir: paths.dir, log });
  const server = ttrpcServer({
    protos, service: protos.task, handlers: tasks.handlers(),
    onError: (method, err) => log(`${method}: ${String((err as Error)?.message ?? err)}`),
  });
  if (!(await listenOnce(server, paths.socket))) {
    log('another shim server already serves this containerd; exiting');
    tasks.close();
    await daemon.close();
    return;
  }
  daemon.events.subscribe((e) => { if (e.vm !== null && (e.type === 'stopped' || e.type === 'deleted')) tasks.poke(e.vm); });
  log(`serving ${paths.socket} for containerd ${a.address}`);
  let exiting = false;
  const exit = (why: string): void => {
    if (exiting) return;
    exiting = true;
    log(`exiting: ${why}`);
    tasks.close();
    server.close(); // stop accepting (Node unlinks the socket); then let the last events reach containerd
    void publisher.flush().then(() => process.exit(0));
    setTimeout(() => process.exit(0), 5000).unref();
  };
  // Shutdown with no task left does not end the server at once: containerd may be starting
  // the next task through it that very moment (`start` found it listening). It ends once it
  // has had no task and no connection for IDLE_CHECKS checks in a row; the listener closes
  // first, so a `start` after that spawns a fresh server.
  tasks.onShutdown = (left) => log(`shutdown requested, ${left} task(s) left`);
  let idle = 0;
  setInterval(() => {
    server.getConnections((_e, n) => {
      idle = tasks.tasks.size === 0 && n === 0 ? idle + 1 : 0;
      if (idle >= IDLE_CHECKS) exit('idle: no task and no connection');
    });
  }, IDLE_CHECK_MS).unref();
}
