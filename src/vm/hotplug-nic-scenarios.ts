/**
 * @module vm/hotplug-nic-scenarios: NIC hot-plug commands the tests and the bench run in a
 * child node process inside a test-made netns (test/net/child.ts calls them by name), as a
 * separate `warden` process would; `attachKilled` SIGKILLs its own process between two steps.
 */
import { run, type Io } from '../cli/index.js';
import { openManager } from './open.js';
import type { QmpConn } from './ports.js';
import type { TeardownDeps } from './teardown.js';

/** `ovsDb`: a private ovsdb-server's socket, given to the CLI as $WARDEN_OVS_DB. */
export interface CliArgs { stateRoot: string; argv: string[]; ovsDb?: string }

/** One `warden` command line through the CLI; its exit status and output. */
export async function cli(a: CliArgs): Promise<{ code: number; stdout: string; stderr: string }> {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } } as Io & { stdout: string; stderr: string };
  if (a.ovsDb !== undefined) process.env['WARDEN_OVS_DB'] = a.ovsDb;
  const code = await run([...a.argv, '--state-dir', a.stateRoot], io);
  return { code, stdout: io.stdout, stderr: io.stderr };
}

/**
 * `warden nic attach` whose process is SIGKILLed right after QMP command `killAfter` (its
 * `nth` occurrence) returned: the manager dies between two steps, holding the VM's lock.
 */
export async function attachKilled(a: { stateRoot: string; vm: string; bridge?: string; nic: string; killAfter: string }): Promise<never> {
  const m = openManager({ stateDir: a.stateRoot });
  const backends = (m as unknown as { d: TeardownDeps }).d.backends;
  const connect = backends.qmpConnect.bind(backends);
  backends.qmpConnect = async (path: string, t: number): Promise<QmpConn> => {
    const c = await connect(path, t);
    return {
      execute: async (command, args, to, fds) => {
        const r = await c.execute(command, args, to, fds);
        if (command === a.killAfter) process.kill(process.pid, 'SIGKILL');
        return r;
      },
      close: () => c.close(),
    };
  };
  await m.attachNic(a.vm, a.bridge === undefined ? { name: a.nic, type: 'user' } : { name: a.nic, type: 'bridge', bridge: a.bridge });
  throw new Error(`the attach finished: ${a.killAfter} never ran`);
}

/** QMP on the VM (through the manager, under its lock). */
export async function qmp(a: { stateRoot: string; vm: string; command: string; args?: Record<string, unknown> }): Promise<unknown> {
  return openManager({ stateDir: a.stateRoot }).qmp(a.vm, a.command, a.args);
}
