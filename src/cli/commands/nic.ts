/** @module cli/commands/nic: `warden nic attach|detach`, hot-plugging NICs into a running VM by fd (vm/hotplug-nic). */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { NicAttachRequest, NicHotplugResult, VmService } from '../../vm/index.js';
import { printJson, type Io } from '../output.js';
import { openService } from './route.js';

interface Opts { stateDir?: string; json?: boolean; liveOnly?: boolean }
interface AttachOpts extends Opts { bridge?: string; ovs?: string; vlan?: string; user?: boolean; name: string; mac?: string }

/** The service with NIC hot-plug, or a clear refusal. */
function nicsOf(m: VmService): Required<Pick<VmService, 'attachNic' | 'detachNic'>> {
  if (m.attachNic === undefined || m.detachNic === undefined) {
    throw new WardenError('USAGE_UNSUPPORTED', 'NIC hot-plug is not served by this service', { suggestions: ['stop the daemon, or use --state-dir of a root no daemon owns'] });
  }
  return { attachNic: m.attachNic.bind(m), detachNic: m.detachNic.bind(m) };
}

/** Exactly one of --bridge, --ovs, --user; --vlan with --ovs only. */
export function nicRequest(o: AttachOpts): NicAttachRequest {
  const kinds = [o.bridge !== undefined, o.ovs !== undefined, o.user === true].filter(Boolean).length;
  if (kinds !== 1) throw new WardenError('USAGE_NIC_BACKEND', 'give exactly one of --bridge BR, --ovs BR or --user', { suggestions: ['warden nic attach NAME --bridge br0 --name net1'] });
  if (o.vlan !== undefined && o.ovs === undefined) throw new WardenError('USAGE_NIC_BACKEND', '--vlan goes with --ovs only');
  const vlan = o.vlan === undefined ? undefined : Number(o.vlan);
  if (vlan !== undefined && !(Number.isInteger(vlan) && vlan >= 1 && vlan <= 4094)) throw new WardenError('USAGE_NIC_BACKEND', `--vlan must be 1-4094, got ${o.vlan}`);
  const type = o.bridge !== undefined ? 'bridge' : o.ovs !== undefined ? 'ovs' : 'user';
  return {
    name: o.name, type, liveOnly: o.liveOnly === true,
    ...(o.bridge ?? o.ovs) === undefined ? {} : { bridge: (o.bridge ?? o.ovs)! },
    ...(vlan === undefined ? {} : { vlan }), ...(o.mac === undefined ? {} : { mac: o.mac }),
  };
}

/** Prints the result; a detach the guest has not answered yet is exit 8 (VM_DEVICE_REMOVING), as for disks. */
function report(io: Io, r: NicHotplugResult, json: boolean | undefined): void {
  if (r.state === 'removing') {
    throw new WardenError('VM_DEVICE_REMOVING', `NIC ${r.nic} of VM ${r.vm} is removing: device_del was sent, but the guest has not released ${r.deviceId} yet`, {
      context: { ...r }, suggestions: ['run the same detach again to finish it once the guest lets go (any later NIC command also finishes it once it has)', 'a paused or hung guest cannot answer: resume it or stop the VM'],
    });
  }
  if (json === true) { printJson(io, r); return; }
  const persisted = r.liveOnly ? ' (live only: the spec is unchanged)' : '';
  io.out(`NIC ${r.nic} (${r.mac}) ${r.state} ${r.state === 'attached' ? 'to' : 'from'} VM ${r.vm} as ${r.deviceId}${persisted}`);
}

export function registerNic(program: Command, io: Io): void {
  const nic = program.command('nic').description('hot-plug NICs into a running VM (a TAP by fd, or passt on a socketpair)');
  const state = (c: Command): Command => c.option('--state-dir <dir>', 'state root').option('--json', 'print the result as JSON').option('--live-only', 'change the running VM only, not its stored spec');
  state(nic.command('attach').description('attach a virtio NIC: a TAP on a Linux or Open vSwitch bridge, or user networking (passt)').argument('<name>', 'the VM'))
    .option('--bridge <br>', 'a Linux bridge')
    .option('--ovs <br>', 'an Open vSwitch bridge')
    .option('--vlan <n>', 'the OVS access VLAN tag')
    .option('--user', 'user networking (passt in a jail of its own, as at boot)')
    .requiredOption('--name <nic>', 'the NIC\'s name in the spec')
    .option('--mac <mac>', 'the MAC (default: stable, from the VM and NIC names)')
    .action(async (name: string, o: AttachOpts) => {
      const req = nicRequest(o);
      report(io, await nicsOf(await openService({ stateDir: o.stateDir })).attachNic(name, req), o.json);
    });
  state(nic.command('detach').description('detach a hot-plugged NIC (waits for the guest to release it)').argument('<name>', 'the VM').argument('<nic>', 'the NIC'))
    .option('--timeout <s>', 'seconds to wait for the guest before leaving the NIC `removing`', '10')
    .action(async (name: string, nicName: string, o: Opts & { timeout: string }) => {
      const waitMs = Number(o.timeout) * 1000;
      if (!Number.isFinite(waitMs) || waitMs < 0) throw new WardenError('USAGE_BAD_TIMEOUT', `--timeout must be a number of seconds, got ${o.timeout}`);
      report(io, await nicsOf(await openService({ stateDir: o.stateDir })).detachNic(name, nicName, { liveOnly: o.liveOnly === true, waitMs }), o.json);
    });
}
