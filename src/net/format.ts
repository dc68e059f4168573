/** @module net/format: a readable, stable text form of steps and their undo, for golden files and `--dry-run`. */
import { undoText, type CommandOptions, type LinkSet, type Step, type UndoEntry } from './steps.js';

const q = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

function linkSet(s: LinkSet, mtuOf: string | undefined): string {
  return [
    s.address === undefined ? '' : `address ${s.address}`, s.mtu === undefined ? '' : `mtu ${s.mtu}`,
    mtuOf === undefined ? '' : `mtu <mtu of ${mtuOf}>`, s.alias === undefined ? '' : `alias ${q(s.alias)}`,
    s.master === undefined ? '' : `master ${s.master}`, s.up === true ? 'up' : '',
  ].filter((x) => x !== '').join(' ');
}

function stepLine(s: Step): string {
  switch (s.op) {
    case 'ensure-absent': return `[${s.nic}] ensure-absent ${s.ifname}: RTM_GETLINK ${s.ifname} must fail with ENODEV`;
    case 'open-tap': return `[${s.nic}] open-tap ${s.ifname}: TUNSETIFF IFF_TAP|IFF_NO_PI${s.vnetHdr ? '|IFF_VNET_HDR' : ''}${s.queues > 1 ? '|IFF_MULTI_QUEUE' : ''} x${s.queues} -> fds ${s.fdNames.join(',')}; ifindex from RTM_GETLINK ${s.ifname}`;
    case 'check-bridge': return s.type === 'linux'
      ? `[${s.nic}] check-bridge ${s.bridge} (linux): RTM_GETLINK ${s.bridge} must be kind bridge; keep its ifindex and mtu`
      : `[${s.nic}] check-bridge ${s.bridge} (ovs): ovsdb unix:${s.ovs.db} select Bridge name=${s.bridge} (timeout ${s.ovs.timeoutSec} s)`;
    case 'set-link': return `[${s.nic}] set-link ${s.ifname}: RTM_NEWLINK ${linkSet(s.set, s.mtuOf)}`;
    case 'add-macvtap': return `[${s.nic}] add-macvtap ${s.ifname}: RTM_NEWLINK create ${s.ifname} link ${s.link} address ${s.mac} kind macvtap mode ${s.mode}`;
    case 'ovs-add-port': {
      const ids = Object.keys(s.externalIds).sort().map((k) => `${k}=${JSON.stringify(s.externalIds[k])}`).join(' ');
      return `[${s.nic}] ovs-add-port ${s.ifname}: ovsdb unix:${s.ovs.db} transact: drop any port ${s.ifname}, add port ${s.ifname} to ${s.bridge}`
        + `${s.vlan === undefined ? '' : ` tag ${s.vlan}`}, interface external_ids {${ids}}; wait for ovs-vswitchd (timeout ${s.ovs.timeoutSec} s)`;
    }
    case 'open-macvtap': return `[${s.nic}] open-macvtap ${s.ifname}: ifindex from RTM_GETLINK ${s.ifname}; open /dev/tap<ifindex> -> fds ${s.fdNames.join(',')}`;
    case 'open-vhost': return `[${s.nic}] open-vhost: open ${s.path} -> fds ${s.fdNames.join(',')}`;
  }
}

function undoOf(s: Step): UndoEntry | undefined {
  return s.op === 'open-tap' || s.op === 'set-link' || s.op === 'add-macvtap' || s.op === 'ovs-add-port' ? s.undo : undefined;
}

/** `steps:` in order, then `undo (newest first):` with what each recorded change is undone with. */
export function formatSteps(steps: readonly Step[], o: CommandOptions = {}): string {
  const undo = steps.map(undoOf).filter((u): u is UndoEntry => u !== undefined).reverse();
  return ['steps:', ...steps.map((s) => '  ' + stepLine(s)), 'undo (newest first):',
    ...undo.map((u) => `  [${u.nic}] ${u.kind} ${u.ifname}: ${undoText(u, o)} [while ${u.ifname} keeps its recorded ifindex]`)].join('\n') + '\n';
}
