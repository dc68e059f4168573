/**
 * @module test/net/netns: network namespaces for tests (named wdt*), and running a scenario
 * function in a child node process inside one, so TAPs, bridges and guests never touch
 * the host's own network.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where teardown is registered: a node:test TestContext, or anything with `after`. */
export interface Cleanups {
  after(fn: () => void): void;
}

const CHILD = fileURLToPath(new URL('./child.js', import.meta.url));

/** Why root-level network tests cannot run here, or undefined when they can. */
export function netSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces, bridges and TAP devices';
  if (!existsSync('/dev/net/tun')) return 'no /dev/net/tun on this host';
  if (spawnSync('ip', ['-V']).status !== 0) return 'the ip tool (iproute2) is missing';
  return undefined;
}

/** Runs argv inside `ns`, synchronously; throws with stderr on failure unless `allowFail`. */
export function nsRun(ns: string, argv: string[], allowFail = false): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0 && !allowFail) throw new Error(`${argv.join(' ')} in netns ${ns} failed: ${r.stderr}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Creates netns `name` with lo up; when the test ends, kills what still runs in it and deletes it. */
export function createNetns(t: Cleanups, name: string): string {
  spawnSync('ip', ['netns', 'del', name]); // a leftover of an interrupted run of this very test
  const r = spawnSync('ip', ['netns', 'add', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip netns add ${name} failed: ${r.stderr}`);
  t.after(() => {
    // Anything still inside is ours (a QEMU orphaned by a killed scenario, say): end it by pid first.
    const pids = spawnSync('ip', ['netns', 'pids', name], { encoding: 'utf8' }).stdout.split('\n').filter((p) => /^\d+$/.test(p));
    for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch { /* already gone */ } }
    spawnSync('ip', ['netns', 'del', name]);
  });
  nsRun(name, ['ip', 'link', 'set', 'lo', 'up']);
  return name;
}

/** A unique-enough netns name for this process: `wdt` + tag + pid. */
export function netnsName(tag: string): string {
  return `wdt${tag}${process.pid}`;
}

/**
 * Calls `<module>.<fn>(args)` in a fresh node process inside `ns` and returns its result;
 * `target` is `fn` (in scenarios.js), `module#fn` (module.js beside this file) or
 * `/absolute/path.js#fn` (a scenario module elsewhere, e.g. src/vm's). An
 * exception in the child is rethrown here with its code and context. `keepMounts` enters
 * only the netns (nsenter) instead of `ip netns exec`, whose fresh /sys lacks the host's
 * cgroup mounts (the jailer needs them); /sys/class/net then still shows the host's links.
 */
export function inNetns<T>(ns: string, target: string, args: unknown, timeoutMs = 120_000, o: { keepMounts?: boolean } = {}): Promise<T> {
  const [mod, fn] = target.includes('#') ? target.split('#') as [string, string] : ['scenarios', target];
  const modPath = mod.startsWith('/') ? mod : fileURLToPath(new URL(`./${mod}.js`, import.meta.url));
  const enter = o.keepMounts === true ? ['nsenter', `--net=/run/netns/${ns}`, '--'] : ['ip', 'netns', 'exec', ns];
  return new Promise((resolve, reject) => {
    const child = spawn(enter[0]!, [...enter.slice(1), process.execPath, CHILD, modPath, fn, JSON.stringify(args)],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split('\n').pop() ?? '';
      let msg: { ok: boolean; value?: T; error?: { message: string; code?: string; context?: unknown } };
      try { msg = JSON.parse(last); } catch { return reject(new Error(`scenario ${fn} exited ${code} without a result:\n${out}\n${err}`)); }
      if (msg.ok) return resolve(msg.value as T);
      const e = Object.assign(new Error(`scenario ${fn}: ${msg.error?.message}\n${err}`), { code: msg.error?.code, context: msg.error?.context });
      reject(e);
    });
  });
}
