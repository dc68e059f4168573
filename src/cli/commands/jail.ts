/** @module cli/commands/jail: `warden jail --spec FILE -- PROGRAM ARGS...`: run any program under a JailSpec, on its own. */
import { readFileSync, openSync, closeSync } from 'node:fs';
import type { Command } from 'commander';
import type { Io } from '../output.js';
import { printJson } from '../output.js';
import { WardenError } from '../../errors/index.js';
import type { JailerConfig, JailExit, JailHandle, JailSpec } from '../../jail/index.js';

// The jailer loads when `warden jail` runs, not at every command's start-up (issue 16).
const jail = () => import('../../jail/index.js');

interface JailOptions {
  spec?: string; fd: string[]; detach?: boolean; log?: string; teardown?: string; list?: boolean; json?: boolean;
  stateDir?: string; runtimeDir?: string; uidRange?: string; cgroupParent?: string;
}

function usage(message: string): never {
  throw new WardenError('USAGE_JAIL', message, { suggestions: ['warden jail --spec FILE [--fd NAME=FD]... -- PROGRAM ARGS...'] });
}

async function configFrom(o: JailOptions): Promise<JailerConfig> {
  const overrides: Partial<JailerConfig> = {};
  if (o.stateDir !== undefined) overrides.stateDir = o.stateDir;
  if (o.runtimeDir !== undefined) overrides.runtimeDir = o.runtimeDir;
  if (o.cgroupParent !== undefined) overrides.cgroupParent = o.cgroupParent;
  if (o.uidRange !== undefined) {
    const m = /^(\d+)-(\d+)$/.exec(o.uidRange);
    if (m === null || Number(m[2]) < Number(m[1])) usage(`--uid-range must be FIRST-LAST, got "${o.uidRange}"`);
    overrides.uidRange = { first: Number(m[1]), count: Number(m[2]) - Number(m[1]) + 1 };
  }
  return (await jail()).defaultJailerConfig(overrides);
}

/** The spec file, with PROGRAM ARGS (when given) as its argv. */
function readSpec(file: string, program: string[]): JailSpec {
  let spec: JailSpec;
  try { spec = JSON.parse(readFileSync(file, 'utf8')) as JailSpec; } catch (cause) {
    throw new WardenError('USAGE_JAIL', `reading the JailSpec ${file} failed`, { cause, context: { file } });
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new WardenError('USAGE_JAIL', `the JailSpec in ${file} must be a JSON object`, { context: { file } });
  }
  if (program.length > 0) spec = { ...spec, argv: program };
  return spec;
}

/** --fd NAME=FD entries; a spec fd not named takes this process's fd of the same number (3+i). */
function fdMap(spec: JailSpec, entries: string[]): Map<string, number> {
  const map = new Map<string, number>();
  for (const e of entries) {
    const m = /^([^=]+)=(\d+)$/.exec(e);
    if (m === null) usage(`--fd must be NAME=FD, got "${e}"`);
    map.set(m[1]!, Number(m[2]));
  }
  const listed = typeof spec === 'object' && spec !== null && Array.isArray(spec.fds) ? spec.fds : [];
  for (const f of listed) if (typeof f?.name === 'string' && typeof f.target === 'number' && !map.has(f.name)) map.set(f.name, f.target);
  return map;
}

function describeExit(exit: JailExit): string {
  return exit.exitCode === null ? 'ended without a reported status' : `exited with status ${exit.exitCode}`;
}

/** Foreground: the program gets this terminal's stdio; signals are passed on; teardown always runs. */
async function runForeground(io: Io, spec: JailSpec, fds: Map<string, number>, config: JailerConfig, json: boolean): Promise<void> {
  const { launchJail, teardownJail, JailError } = await jail();
  const handle: JailHandle = await launchJail(spec, { fds, stdio: { stdin: 0, stdout: 1, stderr: 2 }, config });
  const forward = (sig: NodeJS.Signals) => (): void => { handle.kill(sig); };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((s) => [s, forward(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);
  let exit: JailExit;
  try { exit = await handle.wait(); } finally {
    for (const [s, h] of handlers) process.off(s, h);
    await teardownJail(spec.name, config);
  }
  if (json) printJson(io, { name: spec.name, pid: handle.pid, uid: handle.uid, exit });
  if (exit.exitCode !== 0) {
    throw new JailError('JAIL_PROGRAM_FAILED', `the program in jail "${spec.name}" ${describeExit(exit)}`, { context: { jail: spec.name, exit }, ...(exit.exitCode === null ? {} : { exitCode: exit.exitCode }) });
  }
}

async function runDetached(io: Io, spec: JailSpec, fds: Map<string, number>, config: JailerConfig, log: string | undefined): Promise<void> {
  const { launchJail } = await jail();
  const out = log === undefined ? undefined : openSync(log, 'a', 0o600);
  try {
    const h = await launchJail(spec, { fds, config, ...(out === undefined ? {} : { stdio: { stdout: out, stderr: out } }) });
    printJson(io, { name: h.name, pid: h.pid, uid: h.uid, gid: h.gid, cgroupPaths: h.cgroupPaths, statusFile: h.statusFile });
  } finally { if (out !== undefined) closeSync(out); }
}

export function registerJail(program: Command, io: Io): void {
  program.command('jail')
    .description('run any program confined by a JailSpec (JSON; see docs/jail.md); inherited fds are named in the spec')
    .argument('[program...]', 'the program and its arguments (absolute path inside the jail); replaces the spec\'s argv')
    .option('--spec <file>', 'the JailSpec as JSON')
    .option('--fd <name=fd>', 'hand this process\'s fd FD over as the spec\'s fd NAME (default: the fd numbered like its target)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--detach', 'leave the program running, print its handle as JSON')
    .option('--log <file>', 'with --detach: append the program\'s stdout and stderr here')
    .option('--teardown <name>', 'kill what remains of jail NAME, remove its cgroups, release its lease')
    .option('--list', 'list recorded jails')
    .option('--json', 'machine-readable output')
    .option('--state-dir <dir>', 'lease store directory').option('--runtime-dir <dir>', 'runtime directory for status files')
    .option('--uid-range <first-last>', 'uids leased to jails').option('--cgroup-parent <name>', 'parent cgroup name')
    .action(async (args: string[], o: JailOptions) => {
      const config = await configFrom(o);
      if (o.list === true) {
        const jails = await (await jail()).listJails(config);
        if (o.json === true) printJson(io, jails);
        else if (jails.length === 0) io.out('no jails'); // as `warden list` says "no VMs": silence reads like a failure
        else for (const j of jails) io.out(`${j.name}\tuid ${j.uid}\t${j.running ? `running (pid ${j.pid})` : 'not running'}`);
        return;
      }
      if (o.teardown !== undefined) {
        const r = await (await jail()).teardownJail(o.teardown, config);
        if (o.json === true) printJson(io, r);
        else io.out(r.found ? `removed jail ${r.name} (killed ${r.killed.length} processes, ${r.removedCgroups.length} cgroups)` : `nothing left of jail ${r.name}`);
        return;
      }
      if (o.spec === undefined) usage('--spec FILE is required');
      const spec = readSpec(o.spec, args);
      const fds = fdMap(spec, o.fd);
      if (o.detach === true) await runDetached(io, spec, fds, config, o.log);
      else await runForeground(io, spec, fds, config, o.json === true);
    });
}
