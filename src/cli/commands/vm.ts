/** @module cli/commands/vm: the VM lifecycle verbs (run, create, start, stop, kill, pause, resume, restart, list, inspect, console, logs, delete, qmp). */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { VmService } from '../../vm/index.js';
import { DETACH_KEY_NAME } from '../../vm/detach-key.js';
import { printJson, type Io } from '../output.js';
import { jsonLogLines, listRows, qmpArgs } from './vm-output.js';
import { openService } from './route.js';

// The lifecycle's modules load when a verb runs, not when any command starts (issue 16).
const vm = () => import('../../vm/index.js');

interface StateOpt { stateDir?: string }

/** The VmService for this command: the daemon's when one serves this state root, else in-process. */
function manager(io: Io, o: StateOpt, quiet = false): Promise<VmService> {
  return openService({ stateDir: o.stateDir, ...(quiet ? {} : { progress: { err: (t: string) => io.err(t) } }) });
}

async function serialLogOf(m: VmService, name: string): Promise<string> {
  const [{ StateStore }, { NodeFs }] = await Promise.all([vm(), import('../../sys/index.js')]);
  return new StateStore(m.stateRoot, new NodeFs()).paths(name).serialLog;
}

function withState(cmd: Command): Command {
  return cmd.option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)');
}

async function consoleOf(io: Io, m: VmService, name: string): Promise<void> {
  const rec = await m.get(name);
  if (rec.phase !== 'running' && rec.phase !== 'paused') {
    throw new WardenError('VM_INVALID_STATE', `cannot attach to the console of VM ${name}: it is ${rec.phase}`, { context: { vm: name, phase: rec.phase }, suggestions: [`start it: warden start ${name}`] });
  }
  io.err(`attached to the serial console of ${name}; ${DETACH_KEY_NAME} detaches (the VM keeps running)`);
  const why = await m.console(name, { input: process.stdin, output: process.stdout });
  process.stdin.destroy(); // a paused pipe would keep the process alive
  io.err(`\n${why === 'closed' ? `the console of ${name} closed` : `detached from ${name}`}`);
}

function lifecycle(program: Command, io: Io): void {
  withState(program.command('create').description('define a VM from a spec file (does not start it)').argument('<file>', 'the spec (YAML or JSON)'))
    .option('--name <name>', 'use this name instead of the spec\'s')
    .option('--json', 'print the record as JSON')
    .action(async (file: string, o: StateOpt & { name?: string; json?: boolean }) => {
      const rec = await (await manager(io, o, true)).create({ file }, o.name === undefined ? {} : { name: o.name });
      if (o.json) printJson(io, rec); else io.out(`created VM ${rec.name}`);
    });
  withState(program.command('start').description('start a VM: plan, jail, QEMU paused, QMP, cont').argument('<name>', 'the VM'))
    .option('--json', 'print {record, timings, warnings} as JSON (instead of the step list)')
    .action(async (name: string, o: StateOpt & { json?: boolean }) => {
      const r = await (await manager(io, o, o.json === true)).start(name);
      if (o.json) printJson(io, { record: r.record, timings: r.timings, warnings: r.warnings });
    });
  withState(program.command('run').description('create and start a VM from a spec file, then attach to its serial console').argument('<file>', 'the spec (YAML or JSON)'))
    .option('--name <name>', 'use this name instead of the spec\'s')
    .option('-d, --detach', 'do not attach to the console')
    .option('--json', 'with --detach: print {record, timings, warnings} as JSON (instead of the step list)')
    .action(async (file: string, o: StateOpt & { name?: string; detach?: boolean; json?: boolean }) => {
      if (o.json && !o.detach) throw new WardenError('USAGE_JSON_ATTACH', 'run --json needs --detach: the console is not JSON', { suggestions: ['warden run --detach --json FILE'] });
      const m = await manager(io, o, o.json === true);
      const rec = await m.create({ file }, o.name === undefined ? {} : { name: o.name });
      const r = await m.start(rec.name).catch((err: unknown) => {
        const hint = `VM ${rec.name} stays defined (the spec as it was read): warden start ${rec.name} retries it; after editing the spec, warden delete ${rec.name} and run again`;
        if (err instanceof WardenError) err.suggestions.push(hint); else io.err(`note: ${hint}`);
        throw err;
      });
      if (o.json) printJson(io, { record: r.record, timings: r.timings, warnings: r.warnings });
      if (!o.detach) await consoleOf(io, m, rec.name);
    });
}

function control(program: Command, io: Io): void {
  withState(program.command('stop').description('stop a VM: ACPI power button, then QMP quit, then SIGKILL (a paused VM is quit at once)').argument('<name>', 'the VM'))
    .option('--timeout <s>', 'seconds to wait for the guest to power off', '30')
    .option('--force', 'skip the ACPI request: quit, then kill')
    .option('--json', 'print the record as JSON (instead of the progress lines)')
    .action(async (name: string, o: StateOpt & { timeout: string; force?: boolean; json?: boolean }) => {
      const timeoutS = o.timeout.trim() === '' ? NaN : Number(o.timeout);
      if (!Number.isFinite(timeoutS) || timeoutS < 0) throw new WardenError('USAGE_BAD_TIMEOUT', `--timeout must be a number of seconds, got ${o.timeout}`);
      const rec = await (await manager(io, o, o.json === true)).stop(name, { timeoutS, force: o.force === true });
      if (o.json) printJson(io, rec);
    });
  for (const [verb, what] of [['kill', 'force a VM off now (SIGKILL)'], ['pause', 'pause the vCPUs'], ['resume', 'resume the vCPUs'], ['restart', 'stop (gracefully) and start again']] as const) {
    withState(program.command(verb).description(what).argument('<name>', 'the VM'))
      .option('--json', 'print the record as JSON')
      .action(async (name: string, o: StateOpt & { json?: boolean }) => {
        const rec = await (await manager(io, o, o.json === true))[verb](name);
        if (o.json) printJson(io, rec); else io.out(`VM ${name} is ${rec.phase}`);
      });
  }
  withState(program.command('delete').description('delete a stopped VM and its state directory').argument('<name>', 'the VM'))
    .option('--force', 'kill it first if it runs')
    .option('--json', 'print {deleted: NAME} as JSON')
    .action(async (name: string, o: StateOpt & { force?: boolean; json?: boolean }) => {
      await (await manager(io, o, o.json === true)).delete(name, { force: o.force === true });
      if (o.json) printJson(io, { deleted: name }); else io.out(`deleted VM ${name}`);
    });
}

function views(program: Command, io: Io): void {
  withState(program.command('list').alias('ls').description('list VMs with their phase (reconciled with reality)'))
    .option('--json', 'print as JSON')
    .action(async (o: StateOpt & { json?: boolean }) => {
      const rows = await listRows(io, await manager(io, o, true));
      if (o.json) printJson(io, rows); else io.out(rows.length === 0 ? 'no VMs' : (await vm()).formatTable(rows));
    });
  withState(program.command('inspect').description('spec, plan, state, pid, uid, cgroups, resources, protections, why it last stopped').argument('<name>', 'the VM'))
    .option('--json', 'print as JSON')
    .action(async (name: string, o: StateOpt & { json?: boolean }) => {
      const i = await (await manager(io, o, true)).inspect(name);
      if (o.json) printJson(io, i); else io.out((await vm()).formatInspection(i));
    });
  withState(program.command('console').description(`attach to a VM's serial console (${DETACH_KEY_NAME} detaches)`).argument('<name>', 'the VM'))
    .action(async (name: string, o: StateOpt) => consoleOf(io, await manager(io, o, true), name));
  withState(program.command('logs').description('print the serial console log (its rotated older part, serial.log.1, first)').argument('<name>', 'the VM'))
    .option('-f, --follow', 'keep printing while the VM runs')
    .option('--json', 'print JSON lines {vm, offset, text} instead of the raw bytes')
    .action(async (name: string, o: StateOpt & { follow?: boolean; json?: boolean }) => {
      const m = await manager(io, o, true);
      const rec = await m.get(name);
      const out = o.json === true ? jsonLogLines(io, name) : process.stdout;
      const log = await serialLogOf(m, name);
      if ((await m.logs(name, out, { follow: o.follow === true })) === 0) {
        io.err(`VM ${name} has no serial console output${rec.phase === 'created' && rec.lastExit === undefined ? ': it has never been started' : ''} (${log})`);
      }
    });
}

/**
 * `warden qmp NAME COMMAND [ARGS-JSON]`. src/qmp may already have registered `qmp` with its
 * socket-level subcommands (`qmp exec SOCKET ...`); this verb then becomes that command's
 * default action (a subcommand name wins over a VM of the same name).
 */
function qmpVerb(program: Command, io: Io): void {
  const existing = program.commands.find((c) => c.name() === 'qmp');
  const cmd = existing ?? program.command('qmp');
  const what = 'run one QMP command on a running VM by name and print the reply';
  cmd.description(existing ? `${existing.description()}; or, with a VM name: ${what}` : what)
    .usage(existing ? '[options] NAME COMMAND [ARGS-JSON] | exec|events SOCKET ...' : '[options] NAME COMMAND [ARGS-JSON]');
  withState(cmd.argument('[name]', 'the VM').argument('[command]', 'the QMP command').argument('[args-json]', 'its arguments as a JSON object'))
    .option('--json', 'JSON output (always JSON; accepted for symmetry)')
    .action(async (name: string | undefined, command: string | undefined, argsJson: string | undefined, o: StateOpt) => {
      if (name === undefined || command === undefined) throw new WardenError('USAGE_MISSING', 'usage: warden qmp NAME COMMAND [ARGS-JSON]', { suggestions: ['e.g. warden qmp NAME query-status'] });
      printJson(io, await (await manager(io, o, true)).qmp(name, command, argsJson === undefined ? undefined : qmpArgs(argsJson)));
    });
}

/** Register after src/qmp's registrar: `qmp NAME COMMAND` extends its `qmp` command. */
export function registerVm(program: Command, io: Io): void {
  lifecycle(program, io);
  control(program, io);
  views(program, io);
  qmpVerb(program, io);
}

export function registerDemo(program: Command, io: Io): void {
  program.command('demo')
    .description('boot a demo VM in the jail (qcow2 overlay, user networking), show its console and status, stop it cleanly')
    .option('--state-dir <dir>', 'state root for the demo VM (default: a temporary directory)')
    .option('--keep', 'keep the demo directory and VM record')
    .action(async (o: { stateDir?: string; keep?: boolean }) => {
      await (await vm()).runDemo(io, { ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }), keep: o.keep === true });
    });
}
