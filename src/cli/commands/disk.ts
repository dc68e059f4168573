/** @module cli/commands/disk: `warden disk attach|detach|resize|limits`: a running VM's disks, hot-plugged by fd (vm/hotplug), grown and throttled. */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { LimitField } from '../../spec/index.js';
import type { HotplugResult, VmService } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

interface Opts { stateDir?: string; json?: boolean; liveOnly?: boolean }

/** The service with hot-plug, or a clear refusal (a daemon's HTTP API does not serve it yet). */
function hotplugOf(m: VmService): Required<Pick<VmService, 'attachDisk' | 'detachDisk'>> {
  if (m.attachDisk === undefined || m.detachDisk === undefined) {
    throw new WardenError('USAGE_UNSUPPORTED', 'disk hot-plug is not served through the daemon\'s API yet', { suggestions: ['stop the daemon, or use --state-dir of a root no daemon owns'] });
  }
  return { attachDisk: m.attachDisk.bind(m), detachDisk: m.detachDisk.bind(m) };
}

/** Prints the result; a detach the guest has not answered yet is exit 8 (VM_DEVICE_REMOVING), with the result as its context. */
function report(io: Io, r: HotplugResult, json: boolean | undefined): void {
  if (r.state === 'removing') {
    throw new WardenError('VM_DEVICE_REMOVING', `disk ${r.disk} of VM ${r.vm} is removing: device_del was sent, but the guest has not released ${r.deviceId} yet`, {
      context: { ...r }, suggestions: ['run the same detach again to finish it once the guest lets go (any later disk command also finishes it)', 'a paused or hung guest cannot answer: resume it or stop the VM'],
    });
  }
  if (json === true) { printJson(io, r); return; }
  const persisted = r.liveOnly ? ' (live only: the spec is unchanged)' : '';
  io.out(`disk ${r.disk} ${r.state} ${r.state === 'attached' ? 'to' : 'from'} VM ${r.vm} as ${r.deviceId}${persisted}`);
}

type LimitFlags = Partial<Record<LimitField, string>>;
const FLAG_FIELDS: readonly LimitField[] = ['iops', 'iopsRead', 'iopsWrite', 'bps', 'bpsRead', 'bpsWrite'];

function limitsOf(l: Partial<Record<LimitField, number>>): { limits?: Record<string, number> } {
  return Object.keys(l).length === 0 ? {} : { limits: l as Record<string, number> };
}

function limitFlags(c: Command): Command {
  return c.option('--iops <n>', 'I/O operations per second, read and write together').option('--iops-read <n>', 'read operations per second').option('--iops-write <n>', 'write operations per second')
    .option('--bps <rate>', 'bytes per second, read and write together (e.g. 10Mi)').option('--bps-read <rate>', 'read bytes per second').option('--bps-write <rate>', 'write bytes per second');
}

/** The limit flags given, as numbers (bps: sizes); 0 (removing a limit) only where `zeroOk`. */
async function limitsFrom(o: LimitFlags, zeroOk: boolean): Promise<Partial<Record<LimitField, number>>> {
  const { parseSize } = await import('../../spec/index.js'); // not at start-up (issue 16)
  const set: Partial<Record<LimitField, number>> = {};
  for (const f of FLAG_FIELDS) {
    const raw = o[f];
    if (raw === undefined) continue;
    const n = raw === '0' ? 0 : f.startsWith('bps') ? parseSize(raw) : /^[0-9]+$/.test(raw) ? Number(raw) : null;
    if (n === null || n > 1e15 || (n === 0 && !zeroOk)) {
      throw new WardenError('USAGE_BAD_LIMIT', `--${f.replace(/[A-Z]/, (c) => `-${c.toLowerCase()}`)} ${raw} is not ${f.startsWith('bps') ? 'a rate (bytes per second, or 10Mi ...)' : 'a whole number'}${zeroOk ? ' (0 removes the limit)' : ' above 0'}`);
    }
    set[f] = n;
  }
  return set;
}

export function registerDisk(program: Command, io: Io): void {
  const disk = program.command('disk').description('a running VM\'s disks: hot-plug by fd, detach, grow, I/O limits');
  const state = (c: Command): Command => c.option('--state-dir <dir>', 'state root').option('--json', 'print the result as JSON').option('--live-only', 'change the running VM only, not its stored spec');
  limitFlags(state(disk.command('attach').description('attach an image as a virtio (or scsi) disk').argument('<name>', 'the VM')))
    .requiredOption('--image <path>', 'the image (its chain is walked under the image policy)')
    .requiredOption('--format <fmt>', 'the top layer\'s format (never probed)')
    .requiredOption('--name <disk>', 'the disk\'s name in the spec')
    .option('--readonly', 'attach read-only')
    .option('--bus <bus>', 'virtio, or scsi (on the VM\'s virtio-scsi controller: spec scsiController: true or a scsi disk)', 'virtio')
    .action(async (name: string, o: Opts & LimitFlags & { image: string; format: string; name: string; readonly?: boolean; bus: string }) => {
      if (o.bus !== 'virtio' && o.bus !== 'scsi') throw new WardenError('USAGE_BAD_BUS', `--bus must be virtio or scsi, got ${o.bus}`);
      const m = hotplugOf(await openService({ stateDir: o.stateDir }));
      const r = await m.attachDisk(name, { name: o.name, image: o.image, format: o.format, readOnly: o.readonly === true, bus: o.bus, liveOnly: o.liveOnly === true, ...limitsOf(await limitsFrom(o, false)) });
      report(io, r, o.json);
    });
  disk.command('resize').description('grow a running VM\'s disk (its top layer; shrinking is refused)').argument('<name>', 'the VM').argument('<disk>', 'the disk').argument('<size>', 'the new size: bytes, or 10Gi, 512M ...')
    .option('--state-dir <dir>', 'state root').option('--json', 'print the result as JSON')
    .action(async (name: string, diskName: string, size: string, o: Opts) => {
      const { parseSize } = await import('../../spec/index.js'); // not at start-up: the spec schemas are costly to build (issue 16)
      const bytes = parseSize(size);
      if (bytes === null) throw new WardenError('USAGE_BAD_SIZE', `${size} is not a size (bytes, or a number with Ki/Mi/Gi/K/M/G)`);
      const m = await openService({ stateDir: o.stateDir });
      if (m.resizeDisk === undefined) throw new WardenError('USAGE_UNSUPPORTED', 'this service does not resize disks');
      const r = await m.resizeDisk(name, diskName, bytes);
      if (o.json === true) printJson(io, r); else io.out(`disk ${r.disk} of VM ${r.vm}: ${r.fromBytes} -> ${r.toBytes} bytes`);
    });
  limitFlags(state(disk.command('limits').description('show or change a running disk\'s I/O limits (merged into the ones in force; 0 removes one)').argument('<name>', 'the VM').argument('<disk>', 'the disk')))
    .option('--clear', 'remove every limit first')
    .action(async (name: string, diskName: string, o: Opts & LimitFlags & { clear?: boolean }) => {
      const set = await limitsFrom(o, true);
      const m = await openService({ stateDir: o.stateDir });
      if (m.setDiskLimits === undefined) throw new WardenError('USAGE_UNSUPPORTED', 'this service does not change I/O limits');
      const r = await m.setDiskLimits(name, diskName, { set, ...(o.clear === true ? { clear: true } : {}), ...(o.liveOnly === true ? { liveOnly: true } : {}) });
      if (o.json === true) { printJson(io, r); return; }
      const shown = Object.entries(r.limits).map(([k, v]) => `${k}=${String(v)}`).join(' ');
      io.out(`disk ${r.disk} of VM ${r.vm}: ${shown === '' ? 'no I/O limits' : shown} (${r.via})${r.liveOnly ? '' : ', stored in the spec'}`);
    });
  state(disk.command('detach').description('detach a disk, hot-plugged or started with (waits for the guest to release it; exit 8 while it has not)').argument('<name>', 'the VM').argument('<disk>', 'the disk'))
    .option('--timeout <s>', 'seconds to wait for the guest before leaving the disk `removing`', '10')
    .action(async (name: string, diskName: string, o: Opts & { timeout: string }) => {
      const waitMs = Number(o.timeout) * 1000;
      if (!Number.isFinite(waitMs) || waitMs < 0) throw new WardenError('USAGE_BAD_TIMEOUT', `--timeout must be a number of seconds, got ${o.timeout}`);
      const m = hotplugOf(await openService({ stateDir: o.stateDir }));
      report(io, await m.detachDisk(name, diskName, { liveOnly: o.liveOnly === true, waitMs }), o.json);
    });
}
