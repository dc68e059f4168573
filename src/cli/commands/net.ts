/** @module cli/commands/net: `warden net` verbs: device names, dry-run steps, host facts, undo from a log, cleanup by name. */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { HostAction } from '../../net/index.js';
// The leaf with the default prefix, not the net module: help text must not load it (issue 16).
import { DEFAULT_IF_PREFIX } from '../../net/names.js';

// Host networking and the sys ports load when a net verb runs, not at every command's start-up.
const netm = () => import('../../net/index.js');
const nodeFs = async () => new (await import('../../sys/index.js')).NodeFs();
import { printJson, type Io } from '../output.js';

interface JsonOpt { json?: boolean }

export function registerNet(program: Command, io: Io): void {
  const net = program.command('net').description('host networking: TAP/OVS/macvtap plumbing, undo logs and leftovers');

  net.command('names <vm> <nics...>').description('the deterministic host device name and stable MAC of each NIC')
    .option('--prefix <p>', 'interface name prefix', DEFAULT_IF_PREFIX).option('--json', 'print JSON')
    .action(async (vm: string, nics: string[], o: JsonOpt & { prefix: string }) => {
      const { hostIfName, stableMac } = await netm();
      const rows = nics.map((nic) => ({ nic, ifname: hostIfName(vm, nic, o.prefix), mac: stableMac(vm, nic) }));
      if (o.json) printJson(io, rows);
      else for (const r of rows) io.out(`${r.nic}\t${r.ifname}\t${r.mac}`);
    });

  net.command('steps <actions-json>').description('print the netlink requests and ovsdb transactions a HostAction list makes, and their undo (dry run)')
    .option('--ovs-db <path>', 'ovsdb-server socket').option('--json', 'print JSON')
    .action(async (file: string, o: JsonOpt & { ovsDb?: string }) => {
      const { formatSteps, stepsFor, validateActions } = await netm();
      const actions = parseJson(await readInput(file, 'HostAction list'), file) as HostAction[];
      validateActions(actions);
      const opts = o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb };
      if (o.json) printJson(io, stepsFor(actions, opts));
      else io.out(formatSteps(stepsFor(actions, opts), opts));
    });

  net.command('facts').description('what this host offers: /dev/net/tun, /dev/vhost-net').option('--json', 'print JSON')
    .action(async (o: JsonOpt) => {
      const facts = await (await netm()).hostNetFacts(await nodeFs());
      if (o.json) printJson(io, facts);
      else for (const [k, v] of Object.entries(facts)) io.out(`${k}\t${v ? 'yes' : 'no'}`);
    });

  net.command('undo <log-file>').description('undo the host changes recorded in an undo log (idempotent)')
    .option('--json', 'print JSON')
    .action(async (file: string, o: JsonOpt) => {
      const { parseUndoLog, undoHostActions } = await netm();
      const log = parseUndoLog(await readInput(file, 'undo log'));
      await undoHostActions(log, {});
      if (o.json) printJson(io, { undone: log.entries.length });
      else io.out(`undone: ${log.entries.length} change(s)`);
    });

  net.command('cleanup <vm>').description("remove a stopped VM's leftover TAPs and OVS ports, found by name and external-ids (refused while the VM runs)")
    .option('--prefix <p>', 'interface name prefix', DEFAULT_IF_PREFIX).option('--ovs-db <path>', 'ovsdb-server socket')
    .option('--no-ovs', 'do not look at Open vSwitch').option('--json', 'print JSON')
    .option('--state-dir <dir>', 'state root where the VM may be recorded (default: $WARDEN_STATE_DIR, /var/lib/warden as root, else $XDG_STATE_HOME/warden)')
    .option('--force', 'clean up even while the VM runs or a process holds its TAP (cuts its network)')
    .action(async (vm: string, o: JsonOpt & { prefix: string; ovsDb?: string; ovs: boolean; stateDir?: string; force?: boolean }) => {
      if (o.force !== true) await refuseLiveVm(vm, o.prefix, o.stateDir);
      const r = await (await netm()).cleanupVmNetwork(vm, { prefix: o.prefix, ovs: o.ovs,
        ...(o.ovsDb === undefined ? {} : { ovsDb: o.ovsDb }) });
      if (o.json) printJson(io, r);
      else {
        for (const x of r.removed) io.out(`removed ${x.kind} ${x.name}`);
        io.out(`${r.removed.length} removed; Open vSwitch ${r.ovs}`);
      }
    });
}

/** Reads a JSON input file, failing as a usage error (exit 2) that names the file. */
async function readInput(file: string, what: string): Promise<string> {
  try {
    return await (await nodeFs()).readFile(file);
  } catch (cause) {
    throw new WardenError('USAGE_BAD_FILE', `reading the ${what} ${file} failed`, { context: { file }, cause, suggestions: ['check the path and its permissions'] });
  }
}

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new WardenError('USAGE_BAD_JSON', `${file} is not JSON`, { context: { file }, cause, suggestions: ['see `warden plan --json` (hostActions) for the shape'] });
  }
}

/**
 * cleanupVmNetwork is only safe while the VM is not running: refuse when its record (in this
 * state root) says it runs, or when a process holds one of its TAPs open, whatever state root
 * started it (a TAP has carrier only while an fd is attached).
 */
async function refuseLiveVm(vm: string, prefix: string, stateDir: string | undefined): Promise<void> {
  const hint = [`stop it first: warden stop ${vm} (its host devices go with it)`, 'or pass --force to cut its network anyway'];
  const phase = await recordedPhase(vm, stateDir);
  if (phase === 'running' || phase === 'paused' || phase === 'stopping') {
    throw new WardenError('VM_INVALID_STATE', `cannot clean up the network of VM ${vm}: it is ${phase}`, { context: { vm, phase }, suggestions: hint });
  }
  const held = await heldTaps(vm, prefix);
  if (held.length > 0) {
    throw new WardenError('VM_INVALID_STATE', `cannot clean up the network of VM ${vm}: a process holds its TAP device(s) ${held.join(', ')} open (the VM runs, perhaps under another state root)`,
      { context: { vm, links: held }, suggestions: hint });
  }
}

async function recordedPhase(vm: string, stateDir: string | undefined): Promise<string | undefined> {
  const { isVmError, openManager } = await import('../../vm/index.js');
  try {
    return (await openManager(stateDir === undefined ? {} : { stateDir }).reconcile(vm)).phase;
  } catch (err) {
    if (isVmError(err, 'VM_NOT_FOUND') || isVmError(err, 'VM_BAD_NAME')) return undefined;
    throw err;
  }
}

async function heldTaps(vm: string, prefix: string): Promise<string[]> {
  const [fs, { aliasOwner, isVmIfName }] = await Promise.all([nodeFs(), netm()]);
  const held: string[] = [];
  for (const ifname of await fs.readdir('/sys/class/net').catch(() => [] as string[])) {
    const dir = `/sys/class/net/${ifname}`;
    const alias = (await fs.readFile(`${dir}/ifalias`).catch(() => '')).trim();
    if (!isVmIfName(ifname, vm, prefix) && aliasOwner(alias) !== vm) continue;
    if (!(await fs.exists(`${dir}/tun_flags`))) continue; // macvtap and others: no fd-carrier rule
    if ((await fs.readFile(`${dir}/carrier`).catch(() => '0')).trim() === '1') held.push(ifname);
  }
  return held;
}
