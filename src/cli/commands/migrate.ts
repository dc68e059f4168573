/** @module cli/commands/migrate: `warden migrate NAME --to SOCKET` (live migration to another daemon, vm/migrate-run) and `--cancel`. */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { apiMigrationTarget } from '../../api/migrate-target.js';
import { WardenError } from '../../errors/index.js';
import type { MigrateResult, VmService } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

interface Opt { to?: string; address?: string; insecureNetwork?: boolean; bandwidth?: string; copyStorage?: boolean; mapPath?: string[]; cancel?: boolean; stateDir?: string; json?: boolean }

function summary(r: MigrateResult): string {
  const m = r.migration;
  const mib = m.transferredBytes === undefined ? '' : `, ${(m.transferredBytes / 1048576).toFixed(1)} MiB sent`;
  return `VM ${r.vm} runs on ${r.to} now (QEMU: ${m.totalTimeMs ?? '?'} ms in all, ${m.downtimeMs ?? '?'} ms downtime${mib})`;
}

function unsupported(s: VmService): WardenError {
  return new WardenError('USAGE_DAEMON_UNSUPPORTED', `warden migrate is not available through the service that owns the state root ${s.stateRoot}`, {
    context: { stateRoot: s.stateRoot }, suggestions: ['update wardend'],
  });
}

export function registerMigrate(program: Command, io: Io): void {
  program.command('migrate').description('move a running VM to another wardend without stopping it (given its API socket): storage shared, or copied with --copy-storage / --map-path; progress shows QEMU\'s figures')
    .argument('<name>', 'the VM')
    .option('--to <socket>', 'the target daemon\'s API socket')
    .option('--address <host>', 'the address the target listens on for the stream (default 127.0.0.1; any other needs --insecure-network)')
    .option('--insecure-network', 'allow a non-loopback --address: the stream is not encrypted, use only on a trusted link')
    .option('--bandwidth <bytes-per-second>', 'limit the stream (QEMU\'s max-bandwidth)')
    .option('--copy-storage', 'storage not shared: the target makes each writable disk (same size and format) and the source copies it first (NBD, block mirror)')
    .option('--map-path <from=to>', 'where disk images go on the target: a path equal to or under FROM is under TO (repeatable; implies --copy-storage)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--cancel', 'cancel the migration of NAME in progress; the VM runs on here')
    .option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--json', 'print the result as JSON')
    .action(async (name: string, o: Opt) => {
      const s = await openService({ stateDir: o.stateDir, ...(o.json === true ? {} : { progress: { err: (t: string) => io.err(t) } }) });
      try {
        if (o.cancel === true) {
          if (s.migrateCancel === undefined) throw unsupported(s);
          await s.migrateCancel(name);
          if (o.json) printJson(io, { cancelling: name }); else io.out(`cancelling the migration of VM ${name}; it runs on here`);
          return;
        }
        if (o.to === undefined) throw new WardenError('USAGE_MISSING', 'warden migrate needs --to SOCKET (the target daemon\'s API socket), or --cancel', {});
        if (s.migrate === undefined) throw unsupported(s);
        const bw = o.bandwidth === undefined ? undefined : Number(o.bandwidth);
        if (bw !== undefined && !(Number.isInteger(bw) && bw > 0)) throw new WardenError('USAGE_BAD_NUMBER', `--bandwidth must be a whole number of bytes per second, got ${o.bandwidth}`, {});
        // Imported here, not at the top: a static import would initialise the vm barrel (and spec) for every command.
        const { parsePathRule } = await import('../../vm/migrate-disks.js');
        const pathMap = (o.mapPath ?? []).map(parsePathRule);
        const r = await s.migrate(name, apiMigrationTarget(resolve(o.to), o.address, o.insecureNetwork === true), {
          ...(bw === undefined ? {} : { maxBandwidth: bw }), ...(o.copyStorage === true ? { copyStorage: true } : {}), ...(pathMap.length === 0 ? {} : { pathMap }),
        });
        if (o.json) printJson(io, r); else io.out(summary(r));
      } finally {
        await s.close();
      }
    });
}
