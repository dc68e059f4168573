/** @module qmp/testing/qemu: starts a real QEMU (TCG, -S, -nodefaults) with QMP monitors on pre-opened listening sockets, for tests and benchmarks. */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, renameSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative } from '../../sys/index.js';

export const QEMU_BINARY = process.env['WARDEN_QEMU'] ?? 'qemu-system-x86_64';

export interface QemuOptions {
  /** -machine value (default 'none'); accel is always TCG. */
  machine?: string;
  /** How many QMP monitors, each on its own socket (default 1). */
  monitors?: number;
  extraArgs?: string[];
  /** Also give QEMU one end of a socketpair as a (non-listening) monitor; the other end is `pairFd`. */
  socketpair?: boolean;
}

export interface TestQemu {
  dir: string;
  /** One path per monitor; connect with QmpClient.connect({ path }). */
  sockets: string[];
  child: ChildProcess;
  /** Our end of the socketpair monitor, when asked for; connect with QmpClient.connect({ fd }). */
  pairFd: number | undefined;
  /** stderr so far, to explain a death. */
  stderr(): string;
  /** Resolves with the exit code or signal once QEMU has exited. */
  exited: Promise<number | string>;
  /** SIGKILLs QEMU if still running and removes the temp dir; safe to call twice. */
  kill(): Promise<void>;
}

/**
 * Listens on each monitor socket here, hands the listening fds to QEMU
 * (`-chardev socket,fd=N,server=on,wait=off`), then closes our copies. The socket is
 * bound under a temporary name and renamed into place, because Node unlinks the bound
 * name when its server closes.
 */
export async function startQemu(options: QemuOptions = {}): Promise<TestQemu> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-qmp-'));
  const servers: net.Server[] = [];
  const sockets: string[] = [];
  try {
    for (let i = 0; i < (options.monitors ?? 1); i++) {
      const tmp = join(dir, `mon${i}.binding`);
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(tmp, resolve));
      servers.push(server);
      renameSync(tmp, join(dir, `mon${i}.sock`));
      sockets.push(join(dir, `mon${i}.sock`));
    }
    const fds = servers.map((s) => (s as unknown as { _handle: { fd: number } })._handle.fd);
    // -compat ...=reject: our own use of a deprecated or unstable interface fails loudly in tests.
    const argv = ['-machine', options.machine ?? 'none', '-accel', 'tcg', '-nodefaults', '-no-user-config', '-S', '-display', 'none',
      '-compat', 'deprecated-input=reject,unstable-input=reject'];
    sockets.forEach((_, i) => argv.push('-chardev', `socket,id=mon${i},fd=${3 + i},server=on,wait=off`, '-mon', `chardev=mon${i},mode=control`));
    const pair = options.socketpair === true ? loadNative().socketpair() : undefined;
    if (pair !== undefined) {
      fds.push(pair[1]);
      argv.push('-chardev', `socket,id=pair,fd=${2 + fds.length}`, '-mon', 'chardev=pair,mode=control');
    }
    argv.push(...(options.extraArgs ?? []));
    try {
      const child = spawn(QEMU_BINARY, argv, { stdio: ['ignore', 'ignore', 'pipe', ...fds] });
      return track(child, dir, sockets, pair?.[0]);
    } finally {
      if (pair !== undefined) loadNative().closeFd(pair[1]);
    }
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  } finally {
    for (const s of servers) s.close();
  }
}

function track(child: ChildProcess, dir: string, sockets: string[], pairFd: number | undefined): TestQemu {
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (s: string) => { if (stderr.length < 65536) stderr += s; });
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
    child.once('error', (err) => resolve(`spawn failed: ${err.message}`));
  });
  return {
    dir, sockets, child, exited, pairFd,
    stderr: () => stderr,
    async kill() {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
