/** @module net/format: a readable, stable text form of steps and their undo, for golden files and `--dry-run`. */
import { undoArgv, type CommandOptions, type Step, type UndoEntry } from './steps.js';

const q = (argv: readonly string[]): string => argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');

function stepLine(s: Step): string {
  switch (s.op) {
    case 'ensure-absent': return `[${s.nic}] ensure-absent ${s.ifname}: ${q(s.argv)} must report no such device`;
    case 'open-tap': return `[${s.nic}] open-tap ${s.ifname}: TUNSETIFF IFF_TAP|IFF_NO_PI${s.vnetHdr ? '|IFF_VNET_HDR' : ''}${s.queues > 1 ? '|IFF_MULTI_QUEUE' : ''} x${s.queues} -> fds ${s.fdNames.join(',')}; ifindex from ${q(s.argv)}`;
    case 'check-bridge': return `[${s.nic}] check-bridge ${s.bridge} (${s.type}): ${q(s.argv)}`;
    case 'run': return `[${s.nic}] run: ${q(s.argv)}${s.mtuOf === undefined ? '' : ` mtu <mtu of ${s.mtuOf}>`}`;
    case 'open-macvtap': return `[${s.nic}] open-macvtap ${s.ifname}: ifindex from ${q(s.argv)}; open /dev/tap<ifindex> -> fds ${s.fdNames.join(',')}`;
    case 'open-vhost': return `[${s.nic}] open-vhost: open ${s.path} -> fds ${s.fdNames.join(',')}`;
  }
}

function undoOf(s: Step): UndoEntry | undefined {
  return s.op === 'open-tap' || s.op === 'run' ? s.undo : undefined;
}

/** `steps:` in order, then `undo (newest first):` with the command each recorded change undoes with. */
export function formatSteps(steps: readonly Step[], o: CommandOptions = {}): string {
  const undo = steps.map(undoOf).filter((u): u is UndoEntry => u !== undefined).reverse();
  return ['steps:', ...steps.map((s) => '  ' + stepLine(s)), 'undo (newest first):',
    ...undo.map((u) => `  [${u.nic}] ${u.kind} ${u.ifname}: ${q(undoArgv(u, o))} [while ${u.ifname} keeps its recorded ifindex]`)].join('\n') + '\n';
}
