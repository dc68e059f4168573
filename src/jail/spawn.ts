/** @module jail/spawn: starts the helper → setpriv → bwrap chain detached, finds the program's real pid, then opens the gate. */
import { spawn, type StdioOptions } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import type { Duplex, Readable, Writable } from 'node:stream';
import { loadNative, type NativeAddon } from '../sys/native.js';
import { JailError } from './errors.js';
import { childrenOf, nsPids, processId, type ProcessId } from './procfs.js';
import { readJailStatus } from './status.js';

export type StdioTarget = number | 'ignore';

export interface SpawnedJail {
  monitor: ProcessId;
  program: ProcessId;
  /** Lets the program run (it has been waiting in the inner helper) and waits for the exec: undefined when the program runs, else the helper's exit status. */
  go(): Promise<number | undefined>;
  /** Kills the chain before it was let go (the program never ran). */
  abort(): void;
}

/** What the helper's early exit statuses mean (see native/warden-exec.c). */
const HELPER_EXIT: Record<number, string> = {
  120: 'the exec helper was called wrongly', 121: 'joining the network namespace failed',
  122: 'joining the cgroup failed', 127: 'exec of setpriv failed',
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The byte the inner helper writes on the gate once it waits for the go (native/warden-exec.c). */
const READY = 0x72;

/** The chain's fd layout: stdin, stdout, a setup-error pipe as fd 2, the allowlist from 3, then status file, gate, real stderr. */
export function chainFds(userFds: number): { statusFd: number; gateFd: number; stderrFd: number } {
  return { statusFd: 3 + userFds, gateFd: 4 + userFds, stderrFd: 5 + userFds };
}

/** What waitForStart needs of the spawned chain: its pid, the setup-error pipe (stdio[2]) and the gate (stdio[length - 2]), 'exit' and 'error'. */
export interface ChainProcess extends EventEmitter {
  readonly pid?: number | undefined;
  readonly stdio: ReadonlyArray<Readable | Writable | Duplex | null | undefined>;
}

/** The addon's spawn when this build has it, else undefined (Node's spawn then). */
function nativeSpawn(): NativeAddon['spawnDetached'] {
  try { return loadNative().spawnDetached; } catch { return undefined; }
}

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, n]) => [n, name]));

/**
 * Starts the chain detached (new session, empty environment) with fds: stdin, stdout, a
 * setup-error pipe as 2, the user's fds from 3, the status file, the gate, the real stderr.
 * Through the addon's posix_spawn (vfork-like: no copy of the manager's page tables, 0.4 ms of
 * its CPU and ~3 ms blocked per launch at 60 MB; exec errors still reported) when it has one,
 * else Node's spawn (a fork of the manager).
 */
export function spawnChain(argv: string[], stdio: { stdin: StdioTarget; stdout: StdioTarget; stderr: number }, userFds: number[], statusFd: number): ChainProcess {
  const spawnDetached = argv[0]!.startsWith('/') ? nativeSpawn() : undefined;
  if (spawnDetached !== undefined) return spawnNative(spawnDetached, argv, stdio, userFds, statusFd);
  const layout: StdioOptions = [stdio.stdin, stdio.stdout, 'pipe', ...userFds, statusFd, 'pipe', stdio.stderr];
  const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: layout, env: {} });
  child.unref();
  return child;
}

/** spawnChain through the addon: the two pipes made here (close-on-exec; the child's ends closed here after the spawn), 'exit' from its pidfd watch. */
function spawnNative(spawnDetached: NonNullable<NativeAddon['spawnDetached']>, argv: string[], stdio: { stdin: StdioTarget; stdout: StdioTarget; stderr: number }, userFds: number[], statusFd: number): ChainProcess {
  const native = loadNative();
  const opened: number[] = [];
  const target = (t: StdioTarget, flags: 'r' | 'w'): number => { if (t !== 'ignore') return t; const fd = openSync('/dev/null', flags); opened.push(fd); return fd; };
  const emitter = new EventEmitter();
  let pid: number | undefined;
  let setupErr: [number, number] | undefined;
  let gate: [number, number] | undefined;
  try {
    const stdin = target(stdio.stdin, 'r');
    const stdout = target(stdio.stdout, 'w');
    setupErr = native.pipe();
    gate = native.socketpair();
    pid = spawnDetached(argv[0]!, argv, [stdin, stdout, setupErr[1], ...userFds, statusFd, gate[1], stdio.stderr],
      (code, signo) => { emitter.emit('exit', code, signo === null ? null : SIGNAL_NAMES.get(signo) ?? `SIG${signo}`); });
  } catch (error) {
    for (const fd of [setupErr?.[0], gate?.[0]]) if (fd !== undefined) native.closeFd(fd);
    setupErr = undefined;
    gate = undefined;
    process.nextTick(() => emitter.emit('error', error));
  } finally {
    for (const fd of [...opened, setupErr?.[1], gate?.[1]]) if (fd !== undefined) closeSync(fd);
  }
  // After a failed spawn the streams are empty, already ended pipes' stand-ins: waitForStart reports the 'error'.
  const errStream = setupErr === undefined ? endedStream() : new Socket({ fd: setupErr[0], readable: true, writable: false });
  const gateStream = gate === undefined ? endedStream() : new Socket({ fd: gate[0], readable: true, writable: true });
  return Object.assign(emitter, { pid, stdio: [null, null, errStream, ...userFds.map(() => null), null, gateStream, null] });
}

function endedStream(): Socket {
  const s = new Socket();
  s.destroy();
  return s;
}

/**
 * After the go, the helper keeps the gate open close-on-exec: end of stream means the exec
 * happened; a byte is the exit status of the step that failed before it (the ready byte
 * came before the go, and was consumed by waitForStart).
 */
function waitForExec(gate: Duplex, timeoutMs = 10000): Promise<number | undefined> {
  return new Promise((resolve) => {
    let failed: number | undefined;
    const done = (): void => { clearTimeout(timer); gate.destroy(); resolve(failed); };
    const timer = setTimeout(() => { failed = -1; done(); }, timeoutMs);
    // The helper's ready byte ("r", before the go) may still be in the stream: not a status.
    gate.on('data', (b: Buffer) => { for (const x of b) if (x !== READY) failed ??= x; });
    gate.once('end', done);
    gate.once('close', done);
    gate.once('error', done);
  });
}

/** The sandbox init bwrap reported and its only child (the inner helper), once both exist. */
function findProgram(statusFile: string): { init: number; pid: number } | undefined {
  const init = readJailStatus(statusFile).initPid;
  const kids = init === undefined ? [] : childrenOf(init);
  return init !== undefined && kids.length === 1 ? { init, pid: kids[0]! } : undefined;
}

/** Keeps the last few KiB written to the chain's setup-error pipe (fd 2 until the go). */
function collectText(stream: Readable): () => string {
  let text = '';
  stream.on('data', (b: Buffer) => { text = (text + b.toString('utf8')).slice(-4000); });
  stream.on('error', () => undefined);
  return () => text.trim();
}

function launchError(name: string, message: string, stderr: string, context: Record<string, unknown>): JailError {
  return new JailError('JAIL_LAUNCH_FAILED', `starting jail "${name}" failed: ${message}${stderr === '' ? '' : `: ${stderr.split('\n').pop()}`}`, {
    context: { jail: name, ...context, ...(stderr === '' ? {} : { stderr }) },
    ...(/Permission denied/.test(stderr) ? { suggestions: ['bwrap runs as the jail\'s uid: bind sources must be reachable by it (search permission on every parent directory)'] } : {}),
  });
}

/**
 * Something to wait on instead of a timer: resolves (and re-arms) when the gate says ready,
 * or the chain exits; `sleep` bounds each wait, for what no fd announces.
 */
function wakeups(gate: Duplex, child: ChainProcess): { next(ms: number): Promise<void>; stop(): void; readonly ready: boolean } {
  let wake: (() => void) | undefined;
  let ready = false;
  const poke = (): void => { wake?.(); };
  const onData = (b: Buffer): void => { if (b.includes(READY)) ready = true; poke(); };
  gate.on('data', onData);
  child.once('exit', poke);
  child.once('error', poke);
  return {
    get ready() { return ready; },
    next: (ms) => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { wake = undefined; resolve(); }, ms);
      wake = () => { clearTimeout(timer); wake = undefined; resolve(); };
    }),
    stop: () => { gate.off('data', onData); child.off('exit', poke); child.off('error', poke); wake?.(); },
  };
}

/**
 * Waits for bwrap's child-pid (the sandbox init), then for its only child (the inner helper,
 * which becomes the program by exec); it must be pid 2 in the jail's pid namespace. The
 * helper says "r" on the gate once it waits there, which wakes this loop at once (bwrap
 * wrote its child-pid before it let the sandbox run, so the first look then finds it).
 * Until then there is nothing to look for: a 50 ms timer only bounds the wait for a helper
 * that never says ready; after "r", a timer backing off to 20 ms covers what no fd
 * announces (a status file written late).
 */
export async function waitForStart(child: ChainProcess, statusFile: string, name: string, timeoutMs: number): Promise<SpawnedJail> {
  const gate = child.stdio[child.stdio.length - 2] as Duplex;
  const setupErr = child.stdio[2] as Readable;
  const stderr = collectText(setupErr);
  let ended: { exitCode: number | null; error?: Error } | undefined;
  child.once('exit', (code, signal) => { ended = { exitCode: code ?? (signal === null ? null : -1) }; });
  child.once('error', (error) => { ended = { exitCode: null, error }; });
  const wake = wakeups(gate, child);
  const abort = (): void => { wake.stop(); gate.destroy(); setupErr.destroy(); try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
  const fail = (message: string, context: Record<string, unknown> = {}): never => { abort(); throw launchError(name, message, stderr(), context); };
  const deadline = Date.now() + timeoutMs;
  for (let backoff = 0.5; ;) {
    if (ended !== undefined) {
      await sleep(5); // let the setup-error pipe drain
      if (ended.error !== undefined) fail(`spawning the exec helper failed (${ended.error.message})`);
      fail(HELPER_EXIT[ended.exitCode ?? -1] ?? `the sandbox exited with status ${String(ended.exitCode)} before the program started`, { exitCode: ended.exitCode });
    }
    if (Date.now() > deadline) fail(`no program process after ${timeoutMs} ms`);
    const found = findProgram(statusFile);
    if (found !== undefined) {
      wake.stop();
      const ns = nsPids(found.pid);
      const program = processId(found.pid);
      const monitor = processId(child.pid!);
      if (ns[ns.length - 1] !== 2 || program === undefined || monitor === undefined) fail('the sandbox did not start its program as expected', { ...found, ns });
      const go = async (): Promise<number | undefined> => { setupErr.destroy(); const result = waitForExec(gate); gate.write('g'); return result; };
      return { monitor: monitor!, program: program!, abort, go };
    }
    await wake.next(wake.ready ? (backoff = Math.min(backoff * 2, 20)) : 50);
  }
}
