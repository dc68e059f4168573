/** @module cli/commands/snapshot: `warden snapshot create|list|revert|delete` (vm/snapshot: external disk snapshots, overlays handed to QEMU by fd). */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { SnapshotInfo, VmService } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

interface Opt { stateDir?: string; json?: boolean }
type Snapshots = VmService & Required<Pick<VmService, 'snapshotCreate' | 'snapshotList' | 'snapshotRevert' | 'snapshotDelete'>>;

function withState(cmd: Command): Command {
  return cmd.option('--state-dir <dir>', 'state root (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--json', 'print the result as JSON');
}

/** The service (wardend's when it owns the state root), refusing clearly if it lacks the verbs. */
async function service(io: Io, o: Opt): Promise<Snapshots> {
  const s = await openService({ stateDir: o.stateDir, ...(o.json === true ? {} : { progress: { err: (t: string) => io.err(t) } }) });
  if (s.snapshotCreate === undefined || s.snapshotList === undefined || s.snapshotRevert === undefined || s.snapshotDelete === undefined) {
    throw new WardenError('USAGE_DAEMON_UNSUPPORTED', `warden snapshot is not available through the service that owns the state root ${s.stateRoot}`, {
      context: { stateRoot: s.stateRoot }, suggestions: ['update wardend, or stop it for the snapshot'],
    });
  }
  return s as Snapshots;
}

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

function table(list: SnapshotInfo[]): string[] {
  if (list.length === 0) return ['no snapshots'];
  const rows = list.map((s) => [s.name, s.createdAt, s.vmPhase, s.memory ? 'yes' : 'no', mib(s.bytes), s.current ? 'yes' : 'no', s.disks.map((d) => d.disk).join(',')]);
  const head = ['NAME', 'CREATED', 'VM WAS', 'MEMORY', 'SIZE', 'IN CHAIN', 'DISKS'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(w[i]!)).join('  ').trimEnd());
}

export function registerSnapshot(program: Command, io: Io): void {
  const snap = program.command('snapshot').description('external disk snapshots: overlays created by warden and handed to QEMU by fd');
  withState(snap.command('create').description('snapshot the VM\'s writable disks (running or stopped); the disks go on new overlays next to them').argument('<name>', 'the VM').argument('[snap]', 'the snapshot\'s name (default snapN)'))
    .option('--memory', 'also save the RAM and device state (running VM): a revert continues the guest')
    .action(async (name: string, s: string | undefined, o: Opt & { memory?: boolean }) => {
      const r = await (await service(io, o)).snapshotCreate(name, { ...(s === undefined ? {} : { snap: s }), ...(o.memory === true ? { memory: true } : {}) });
      if (o.json) printJson(io, r); else io.out(`snapshot ${r.snapshot.name} of VM ${name}: ${r.snapshot.disks.map((d) => `${d.disk} now on ${d.overlay}`).join('; ')}${r.snapshot.memory ? ' (with memory)' : ''}`);
    });
  withState(snap.command('list').description('the VM\'s snapshots: time, disks, size, memory or not').argument('<name>', 'the VM'))
    .action(async (name: string, o: Opt) => {
      const list = await (await service(io, o)).snapshotList(name);
      if (o.json) printJson(io, list); else for (const l of table(list)) io.out(l);
    });
  withState(snap.command('revert').description('stop the VM, reset its disks to the snapshot (on fresh overlays: it stays usable) and start it again if it ran').argument('<name>', 'the VM').argument('<snap>', 'the snapshot'))
    .action(async (name: string, s: string, o: Opt) => {
      const r = await (await service(io, o)).snapshotRevert(name, s);
      if (o.json) printJson(io, r); else io.out(`VM ${name} reverted to snapshot ${s}${r.migration === undefined ? '' : ' (memory restored)'}; it is ${r.record.phase}`);
    });
  withState(snap.command('delete').description('merge the snapshot\'s layer away while the VM runs (block-commit) and remove its files').argument('<name>', 'the VM').argument('<snap>', 'the snapshot'))
    .action(async (name: string, s: string, o: Opt) => {
      const r = await (await service(io, o)).snapshotDelete(name, s);
      if (o.json) printJson(io, r); else io.out(`snapshot ${s} of VM ${name} deleted${r.steps.length > 0 ? ` (${r.steps.join(', ')})` : ''}`);
    });
}
