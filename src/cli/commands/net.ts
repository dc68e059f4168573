/** @module cli/commands/net: `warden net` verbs: device names, dry-run steps, host facts, undo from a log, cleanup by name. */
import type { Command } from 'commander';
import {
  DEFAULT_IF_PREFIX, cleanupVmNetwork, formatSteps, hostIfName, hostNetFacts, parseUndoLog, stableMac, stepsFor,
  undoHostActions, validateActions, type HostAction,
} from '../../net/index.js';
import { NodeFs, NodeProcessRunner } from '../../sys/index.js';
import { printJson, type Io } from '../output.js';

interface JsonOpt { json?: boolean }

export function registerNet(program: Command, io: Io): void {
  const net = program.command('net').description('host networking: TAP/OVS/macvtap plumbing, undo logs and leftovers');

  net.command('names <vm> <nics...>').description('the deterministic host device name and stable MAC of each NIC')
    .option('--prefix <p>', 'interface name prefix', DEFAULT_IF_PREFIX).option('--json', 'print JSON')
    .action((vm: string, nics: string[], o: JsonOpt & { prefix: string }) => {
      const rows = nics.map((nic) => ({ nic, ifname: hostIfName(vm, nic, o.prefix), mac: stableMac(vm, nic) }));
      if (o.json) printJson(io, rows);
      else for (const r of rows) io.out(`${r.nic}\t${r.ifname}\t${r.mac}`);
    });

  net.command('steps <actions-json>').description('print the commands a HostAction list runs, and their undo (dry run)')
    .option('--ovs-db <path>', 'ovsdb-server socket').option('--json', 'print JSON')
    .action(async (file: string, o: JsonOpt & { ovsDb?: string }) => {
      const actions = JSON.parse(await new NodeFs().readFile(file)) as HostAction[];
      validateActions(actions);
      const opts = o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb };
      if (o.json) printJson(io, stepsFor(actions, opts));
      else io.out(formatSteps(stepsFor(actions, opts), opts));
    });

  net.command('facts').description('what this host offers: /dev/net/tun, /dev/vhost-net').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const facts = await hostNetFacts(new NodeFs());
      if (o.json) printJson(io, facts);
      else for (const [k, v] of Object.entries(facts)) io.out(`${k}\t${v ? 'yes' : 'no'}`);
    });

  net.command('undo <log-file>').description('undo the host changes recorded in an undo log (idempotent)')
    .option('--json', 'print JSON')
    .action(async (file: string, o: JsonOpt) => {
      const log = parseUndoLog(await new NodeFs().readFile(file));
      await undoHostActions(log, { runner: new NodeProcessRunner() });
      if (o.json) printJson(io, { undone: log.entries.length });
      else io.out(`undone: ${log.entries.length} change(s)`);
    });

  net.command('cleanup <vm>').description("remove a stopped VM's leftover TAPs and OVS ports, found by name and external-ids")
    .option('--prefix <p>', 'interface name prefix', DEFAULT_IF_PREFIX).option('--ovs-db <path>', 'ovsdb-server socket')
    .option('--no-ovs', 'do not look at Open vSwitch').option('--json', 'print JSON')
    .action(async (vm: string, o: JsonOpt & { prefix: string; ovsDb?: string; ovs: boolean }) => {
      const r = await cleanupVmNetwork(vm, { runner: new NodeProcessRunner(), prefix: o.prefix, ovs: o.ovs,
        ...(o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb }) });
      if (o.json) printJson(io, r);
      else {
        for (const x of r.removed) io.out(`removed ${x.kind} ${x.name}`);
        io.out(`${r.removed.length} removed; Open vSwitch ${r.ovs}`);
      }
    });
}
