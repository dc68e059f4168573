/** @module cli/commands/disk: `warden disk attach|detach`, hot-plugging disks into a running VM by fd (vm/hotplug). */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
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

function report(io: Io, r: HotplugResult, json: boolean | undefined): void {
  if (json === true) { printJson(io, r); return; }
  const persisted = r.liveOnly ? ' (live only: the spec is unchanged)' : '';
  if (r.state === 'removing') io.out(`disk ${r.disk} of VM ${r.vm} is removing: the guest has not released it yet; run detach again to finish`);
  else io.out(`disk ${r.disk} ${r.state} ${r.state === 'attached' ? 'to' : 'from'} VM ${r.vm} as ${r.deviceId}${persisted}`);
}

export function registerDisk(program: Command, io: Io): void {
  const disk = program.command('disk').description('hot-plug disks into a running VM (by fd)');
  const state = (c: Command): Command => c.option('--state-dir <dir>', 'state root').option('--json', 'print the result as JSON').option('--live-only', 'change the running VM only, not its stored spec');
  state(disk.command('attach').description('attach an image as a virtio disk').argument('<name>', 'the VM'))
    .requiredOption('--image <path>', 'the image (its chain is walked under the image policy)')
    .requiredOption('--format <fmt>', 'the top layer\'s format (never probed)')
    .requiredOption('--name <disk>', 'the disk\'s name in the spec')
    .option('--readonly', 'attach read-only')
    .option('--bus <bus>', 'virtio (scsi is not hot-pluggable yet)', 'virtio')
    .action(async (name: string, o: Opts & { image: string; format: string; name: string; readonly?: boolean; bus: string }) => {
      if (o.bus !== 'virtio' && o.bus !== 'scsi') throw new WardenError('USAGE_BAD_BUS', `--bus must be virtio or scsi, got ${o.bus}`);
      const m = hotplugOf(await openService({ stateDir: o.stateDir }));
      const r = await m.attachDisk(name, { name: o.name, image: o.image, format: o.format, readOnly: o.readonly === true, bus: o.bus, liveOnly: o.liveOnly === true });
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
  state(disk.command('detach').description('detach a hot-plugged disk (waits for the guest to release it)').argument('<name>', 'the VM').argument('<disk>', 'the disk'))
    .option('--timeout <s>', 'seconds to wait for the guest before leaving the disk `removing`', '10')
    .action(async (name: string, diskName: string, o: Opts & { timeout: string }) => {
      const waitMs = Number(o.timeout) * 1000;
      if (!Number.isFinite(waitMs) || waitMs < 0) throw new WardenError('USAGE_BAD_TIMEOUT', `--timeout must be a number of seconds, got ${o.timeout}`);
      const m = hotplugOf(await openService({ stateDir: o.stateDir }));
      report(io, await m.detachDisk(name, diskName, { liveOnly: o.liveOnly === true, waitMs }), o.json);
    });
}
