/**
 * @module ui/confinement: what holds a VM in, as seen from the host while it runs (uid,
 * capabilities, no_new_privs, seccomp, namespaces, every fd QEMU holds) next to what the plan
 * asked for (jail mounts and devices, cgroups, the resource manifest traced to the spec).
 */
import { facts, h, table } from './dom.js';
import { fromChip, specView } from './trace.js';

const CAPS = ['chown', 'dac_override', 'dac_read_search', 'fowner', 'fsetid', 'kill', 'setgid', 'setuid', 'setpcap', 'linux_immutable',
  'net_bind_service', 'net_broadcast', 'net_admin', 'net_raw', 'ipc_lock', 'ipc_owner', 'sys_module', 'sys_rawio', 'sys_chroot', 'sys_ptrace',
  'sys_pacct', 'sys_admin', 'sys_boot', 'sys_nice', 'sys_resource', 'sys_time', 'sys_tty_config', 'mknod', 'lease', 'audit_write',
  'audit_control', 'setfcap', 'mac_override', 'mac_admin', 'syslog', 'wake_alarm', 'block_suspend', 'audit_read', 'perfmon', 'bpf', 'checkpoint_restore'];
const NAMESPACES = ['mnt', 'pid', 'net', 'ipc', 'uts', 'user', 'cgroup'];

/** CapEff hex → capability names ("none" when empty). */
export function capNames(hex: string): string[] {
  let v = BigInt(`0x${hex || '0'}`);
  const out: string[] = [];
  for (let bit = 0; v > 0n; bit++, v >>= 1n) if (v & 1n) out.push(`cap_${CAPS[bit] ?? bit}`);
  return out;
}

function fdKind(target: string): string {
  if (target.startsWith('socket:')) return 'socket';
  if (target.startsWith('pipe:')) return 'pipe';
  if (target.startsWith('anon_inode:')) return 'anon inode';
  if (target.startsWith('/dev/')) return 'device';
  return target.startsWith('/') ? 'file' : 'other';
}

type Obj = Record<string, unknown>;

export function confinementView(i: Obj): HTMLElement {
  const p = i['process'] as Obj | null;
  const run = i['run'] as Obj | null;
  const plan = i['plan'] as Obj | null;
  const jail = (plan?.['jail'] ?? null) as Obj | null;
  const spec = specView(i['spec'] ?? {});
  const off = (i['protectionsOff'] as string[] | undefined) ?? [];
  const sections: HTMLElement[] = [];
  if (p === null) sections.push(h('p.note', {}, `QEMU is not running (phase ${String(i['phase'])}): the process view appears while it runs; the plan below is what it would be given.`));
  else {
    const caps = capNames(String(p['capEff']));
    const own = new Set(p['ownNamespaces'] as string[]);
    const fds = Object.entries(p['fds'] as Record<string, string>).sort((a, b) => Number(a[0]) - Number(b[0]));
    sections.push(h('section#process', {}, h('h2', {}, `QEMU process ${String(p['pid'])}, seen from the host`),
      facts([
        ['uid:gid', h('b', { 'data-fact': 'uid' }, `${String(p['uid'])}:${String(p['gid'])}`)],
        ['capabilities', h('span', { 'data-fact': 'caps', class: caps.length === 0 ? 'ok' : 'warn' }, caps.length === 0 ? 'none (CapEff 0)' : caps.join(' '))],
        ['no_new_privs', h('span', { 'data-fact': 'nnp', class: p['noNewPrivs'] ? 'ok' : 'warn' }, p['noNewPrivs'] ? 'set' : 'not set')],
        ['seccomp', h('span', { 'data-fact': 'seccomp', class: p['seccomp'] === 2 ? 'ok' : 'warn' }, ['off', 'strict', 'filter (QEMU -sandbox)'][Number(p['seccomp'])] ?? String(p['seccomp']))],
        ['namespaces', h('span', { 'data-fact': 'ns' }, NAMESPACES.map((n) => h('span', { class: own.has(n) ? 'ns own' : 'ns shared', title: own.has(n) ? 'its own' : 'shared with the host' }, n)))],
        ['protections off', off.length === 0 ? h('span.ok', {}, 'none') : h('span.warn', {}, off.join('; '))],
        ['cgroups', ((run?.['cgroups'] as string[] | undefined) ?? []).join(', ') || '–'],
      ]),
      h('h3', {}, `Files and sockets QEMU holds (${fds.length})`),
      table(['fd', 'kind', 'target'], fds.map(([fd, t]) => [fd, fdKind(t), h('code', {}, t)]), 'fds')));
  }
  if (jail !== null) {
    const mounts = (jail['mounts'] as Obj[] | undefined) ?? [];
    const devices = (jail['devices'] as Obj[] | undefined) ?? [];
    sections.push(h('section#jail', {}, h('h2', {}, 'Jail (from the plan)'),
      facts([['identity', JSON.stringify(jail['identity'])], ['network', JSON.stringify(jail['network'])]]),
      table(['mount', 'source', 'target'], mounts.map((m) => [String(m['type']), h('code', {}, String(m['source'] ?? m['linkTarget'] ?? '')), h('code', {}, String(m['target'] ?? m['path'] ?? ''))])),
      devices.length > 0 ? table(['device', 'access'], devices.map((d) => [h('code', {}, String(d['path'] ?? JSON.stringify(d))), String(d['access'] ?? '')])) : h('p', {}, 'No device nodes.')));
  }
  const manifest = (plan?.['manifest'] as Obj[] | undefined) ?? [];
  sections.push(h('section#manifest', {}, h('h2', {}, 'Resource manifest, traced to the spec'),
    h('div.split', {},
      table(['kind', 'resource', 'access', 'from', 'why'], manifest.map((m) => [String(m['kind']), h('code', {}, String(m['resource'])), String(m['access']), fromChip(String(m['from']), spec), String(m['note'] ?? '')]), 'manifest'),
      spec.el)));
  return h('div.confinement', {}, sections);
}
