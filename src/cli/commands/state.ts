/** @module cli/commands/state: `warden save NAME FILE` and `warden restore FILE [--name NAME]` (vm/state: the state moves through manager-opened fds). */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { MigrationFigures, VmService } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

interface Opt { stateDir?: string; json?: boolean }

function withState(cmd: Command): Command {
  return cmd.option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--json', 'print the result as JSON');
}

/** The service (wardend's when it owns the state root: its save/restore routes), refusing clearly if it lacks the verbs. */
async function service(io: Io, o: Opt, verb: 'save' | 'restore'): Promise<VmService & Required<Pick<VmService, 'save' | 'restore'>>> {
  const s = await openService({ stateDir: o.stateDir, ...(o.json === true ? {} : { progress: { err: (t: string) => io.err(t) } }) });
  if (s.save === undefined || s.restore === undefined) {
    throw new WardenError('USAGE_DAEMON_UNSUPPORTED', `warden ${verb} is not available through the service that owns the state root ${s.stateRoot}`, {
      context: { stateRoot: s.stateRoot }, suggestions: ['update wardend, or stop it for the save or restore'],
    });
  }
  return s as VmService & Required<Pick<VmService, 'save' | 'restore'>>;
}

/** QEMU's figures; the incoming side reports no times, so `ms` (the manager's step time) stands in there. */
function figures(m: MigrationFigures | undefined, ms?: number): string {
  if (m === undefined) return '';
  const mib = m.transferredBytes === undefined ? '' : `, ${(m.transferredBytes / 1048576).toFixed(1)} MiB`;
  const time = m.totalTimeMs !== undefined ? `QEMU: ${m.status} in ${m.totalTimeMs} ms` : `QEMU: ${m.status}, loaded in ${ms?.toFixed(0) ?? '?'} ms`;
  return ` (${time}${mib})`;
}

export function registerState(program: Command, io: Io): void {
  withState(program.command('save').description('pause a VM, write its state into FILE (opened by warden, never by QEMU) and stop it').argument('<name>', 'the VM').argument('<file>', 'a new file'))
    .action(async (name: string, file: string, o: Opt) => {
      const r = await (await service(io, o, 'save')).save(name, file);
      if (o.json) printJson(io, r); else io.out(`VM ${name} saved to ${r.record.saved?.file ?? file}${figures(r.migration)}; it is ${r.record.phase}`);
    });
  withState(program.command('restore').description('start the VM saved in FILE, jailed as any start; the guest continues where it was').argument('<file>', 'a file written by warden save'))
    .option('--name <name>', 'restore as this VM (default: the name in the file); defined from the file\'s spec if it does not exist')
    .action(async (file: string, o: Opt & { name?: string }) => {
      const r = await (await service(io, o, 'restore')).restore(file, o.name === undefined ? {} : { name: o.name });
      if (o.json) printJson(io, r); else io.out(`VM ${r.record.name} restored from ${file}${figures(r.migration, r.timings['incoming'])}; it is ${r.record.phase}`);
    });
}
