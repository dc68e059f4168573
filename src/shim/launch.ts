/**
 * @module shim/launch: the `start` action: reuse this containerd's shim server, or spawn it
 * (detached, its output to the shim log, never to containerd's pipe: containerd reads the
 * address from our combined output and waits for it to close), write the bundle's
 * `address` file (containerd reconnects through it after a restart) and return the address.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveArgv, type ShimArgs } from './args.js';
import { ShimError } from './errors.js';
import { shimPaths } from './names.js';
import { canConnect } from './server.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));
const READY_TIMEOUT_MS = 15_000;

export async function startShim(a: ShimArgs): Promise<string> {
  const paths = shimPaths(a.address);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  chmodSync(paths.dir, 0o700); // whoever reaches the socket can run VMs as root: containerd (root) only
  if (!(await canConnect(paths.socket))) await spawnServer(a, paths.socket, paths.log, paths.dir);
  const address = `unix://${paths.socket}`;
  const tmp = join(a.bundle, '.address');
  writeFileSync(tmp, address);
  renameSync(tmp, join(a.bundle, 'address'));
  return address;
}

async function spawnServer(a: ShimArgs, socket: string, log: string, cwd: string): Promise<void> {
  const out = openSync(log, 'a');
  let exited: number | null | undefined;
  try {
    const child = spawn(process.execPath, [MAIN, ...serveArgv(a)], { detached: true, stdio: ['ignore', out, out], cwd, env: process.env });
    child.on('exit', (code) => { exited = code; });
    child.unref();
  } finally {
    closeSync(out);
  }
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!(await canConnect(socket))) {
    if (exited !== undefined || Date.now() > deadline) {
      if (exited === 0 && (await canConnect(socket))) return; // lost a race to a concurrent start: that server serves
      const tail = (() => { try { return readFileSync(log, 'utf8').trim().split('\n').slice(-5); } catch { return []; } })();
      throw new ShimError('SHIM_IO', `the shim server did not come up on ${socket}${exited === undefined ? ` within ${READY_TIMEOUT_MS} ms` : ` (it exited with ${String(exited)})`}`, {
        context: { socket, log, tail }, suggestions: [`read ${log}`],
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
