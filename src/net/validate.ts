/** @module net/validate: checks a HostAction list before anything touches the host, collecting every issue. */
import type { HostAction } from './actions.js';
import { NetError } from './errors.js';
import { MAX_IFNAME, macProblem } from './names.js';
import { MAX_ALIAS, ownerAlias } from './steps.js';

export interface ActionIssue {
  index: number;
  field: string;
  message: string;
}

const IFNAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const BRIDGE_RE = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
const EXT_ID_KEY_RE = /^[A-Za-z0-9_.-]+$/;
const MODES = new Set(['bridge', 'vepa', 'private', 'passthru']);
const MAX_QUEUES = 16;

type Report = (field: string, message: string) => void;

function checkName(value: string, max: number, re: RegExp, field: string, report: Report): void {
  if (typeof value !== 'string' || !re.test(value)) report(field, `${JSON.stringify(value)} is not a valid device name`);
  else if (Buffer.byteLength(value) > max) report(field, `${JSON.stringify(value)} is longer than ${max} bytes`);
}

function checkQueues(queues: number, fdNames: string[], report: Report): void {
  if (!Number.isInteger(queues) || queues < 1 || queues > MAX_QUEUES) report('queues', `must be an integer in 1..${MAX_QUEUES}, got ${queues}`);
  else if (!Array.isArray(fdNames) || fdNames.length !== queues) report('fdNames', `must name one fd per queue (${queues})`);
}

/** What earlier actions made: TAP names (attachable), every device name, attached names, queues per NIC. */
interface Seen {
  taps: Set<string>;
  devices: Set<string>;
  attached: Set<string>;
  queues: Map<string, number>;
}

function checkOne(a: HostAction, report: Report, seen: Seen): void {
  if (typeof a.nic !== 'string' || a.nic === '') report('nic', 'must be a non-empty string');
  switch (a.kind) {
    case 'tap':
    case 'macvtap': {
      checkName(a.ifname, MAX_IFNAME, IFNAME_RE, 'ifname', report);
      checkQueues(a.queues, a.fdNames, report);
      const bad = macProblem(a.mac);
      if (bad !== undefined && !(a.kind === 'macvtap' && a.mac.startsWith('fe'))) report('mac', `${JSON.stringify(a.mac)} ${bad}`);
      if (a.kind === 'tap' && a.mtu !== undefined && (!Number.isInteger(a.mtu) || a.mtu < 68 || a.mtu > 65535)) report('mtu', `must be an integer in 68..65535, got ${a.mtu}`);
      if (a.kind === 'macvtap') {
        checkName(a.link, 15, BRIDGE_RE, 'link', report);
        if (!MODES.has(a.mode)) report('mode', `${JSON.stringify(a.mode)} is not one of bridge, vepa, private, passthru`);
      }
      if (seen.devices.has(a.ifname)) report('ifname', `${a.ifname} is created twice`);
      seen.devices.add(a.ifname);
      if (a.kind === 'tap') seen.taps.add(a.ifname);
      if (Number.isInteger(a.queues) && a.queues >= 1) seen.queues.set(a.nic, a.queues);
      return;
    }
    case 'bridge-attach':
    case 'ovs-attach':
      checkName(a.bridge, 15, BRIDGE_RE, 'bridge', report);
      if (!seen.taps.has(a.ifname)) report('ifname', `${JSON.stringify(a.ifname)} is not created by an earlier tap action`);
      else if (seen.attached.has(a.ifname)) report('ifname', `${a.ifname} is attached twice`);
      seen.attached.add(a.ifname);
      if (a.kind === 'ovs-attach') checkOvs(a.vlan, a.externalIds, report);
      return;
    case 'vhost':
      if (!Array.isArray(a.fdNames) || a.fdNames.length < 1 || a.fdNames.length > MAX_QUEUES) report('fdNames', `must name 1..${MAX_QUEUES} fds`);
      else if (seen.queues.has(a.nic) && seen.queues.get(a.nic) !== a.fdNames.length) {
        report('fdNames', `QEMU needs one vhost fd per queue of nic ${a.nic} (${seen.queues.get(a.nic)})`);
      }
      return;
    default:
      report('kind', `unknown kind ${JSON.stringify((a as { kind: unknown }).kind)}`);
  }
}

function checkOvs(vlan: number | undefined, ids: Record<string, string>, report: Report): void {
  if (vlan !== undefined && (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095)) report('vlan', `must be an integer in 0..4095, got ${vlan}`);
  for (const [k, v] of Object.entries(ids ?? {})) {
    if (!EXT_ID_KEY_RE.test(k)) report(`externalIds.${k}`, 'key must match [A-Za-z0-9_.-]+');
    if (typeof v !== 'string') report(`externalIds.${k}`, 'value must be a string');
  }
}

/** Every issue of the list (empty when valid). fd names must be unique across all actions. */
export function actionIssues(actions: readonly HostAction[], vm?: string): ActionIssue[] {
  const issues: ActionIssue[] = [];
  for (const [index, a] of actions.entries()) {
    if (vm !== undefined && typeof a.nic === 'string' && Buffer.byteLength(ownerAlias(vm, a.nic)) > MAX_ALIAS) {
      issues.push({ index, field: 'nic', message: `the VM and NIC names are too long for the device alias (${MAX_ALIAS} bytes encoded)` });
    }
  }
  const seen: Seen = { taps: new Set(), devices: new Set(), attached: new Set(), queues: new Map() };
  const fdNames = new Set<string>();
  actions.forEach((a, index) => {
    const report: Report = (field, message) => issues.push({ index, field, message });
    checkOne(a, report, seen);
    for (const name of 'fdNames' in a && Array.isArray(a.fdNames) ? a.fdNames : []) {
      if (fdNames.has(name)) report('fdNames', `fd name ${JSON.stringify(name)} is used twice`);
      fdNames.add(name);
    }
  });
  return issues;
}

/** Throws NET_BAD_ACTION listing every issue; changes nothing on the host. */
export function validateActions(actions: readonly HostAction[], vm?: string): void {
  const issues = actionIssues(actions, vm);
  if (issues.length === 0) return;
  const first = issues[0]!;
  throw new NetError('NET_BAD_ACTION', `host network actions are invalid: actions[${first.index}].${first.field} ${first.message}` +
    (issues.length > 1 ? ` (and ${issues.length - 1} more)` : ''), { context: { issues } });
}
