/** NIC hot-plug by fd: the pure plan against the boot plan, and a real QEMU (TCG, pc) whose test guest sees a NIC appear on a Linux bridge in a test netns. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { inNetns, netSkipReason, nsRun } from '../../test/net/netns.js';
import { ovsSkipReason, startPrivateOvs } from '../../test/net/ovs.js';
import { ovsGet, ovsPorts } from '../../test/net/scenarios.js';
import { PASST_BINARY, USER_NET, buildPlan, hostIfname, hostWideName, planNicAttach } from '../plan/index.js';
import { stateRootScope } from './facts.js';
import { sketchFacts } from '../plan/testing.js';
import type { QemuCaps } from '../qemu/index.js';
import { parseSpec, type Network } from '../spec/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { netnsWorld } from './netns-world.js';
import { openManager } from './open.js';
import { isAlive } from './proc.js';
import { NodeFs } from '../sys/index.js';
import { run } from '../cli/index.js';
import { guestSays, leftovers, openConsole, qemuFiles, testEnv, vmName, waitForText } from './testing.js';

const QEMU = JSON.parse(readFileSync(new URL('../../../test/golden/plan/_facts/qemu-7.2.json', import.meta.url), 'utf8')) as QemuCaps;
const SCENARIOS = fileURLToPath(new URL('./hotplug-nic-scenarios.js', import.meta.url));
const CHILD = fileURLToPath(new URL('../../test/net/child.js', import.meta.url));

const specYaml = (nets: string): string => `apiVersion: warden/v1
name: web
memory: 256Mi
machine: pc
networks: ${nets}
`;

test('planNicAttach: the NIC the boot plan would make (same netdev and device), rendered as getfd/netdev_add/device_add with inverses, fds by name; refusals', () => {
  const nic = { name: 'n1', type: 'bridge', bridge: 'br0' };
  const boot = buildPlan(parseSpec(specYaml(JSON.stringify([nic])), 'web.yaml'), sketchFacts('web', QEMU));
  const bootNetdev = JSON.parse(boot.argv[boot.argv.indexOf('-netdev') + 1]!) as Record<string, unknown>;
  const bootDevice = boot.argv.map((a, i) => (boot.argv[i - 1] === '-device' ? JSON.parse(a) as Record<string, unknown> : null)).find((d) => d?.['id'] === 'nic-n1')!;
  const spec = parseSpec(specYaml('[]'), 'web.yaml');
  const n: Network | undefined = parseSpec(specYaml(JSON.stringify([nic])), 'web.yaml').networks[0];
  const p = planNicAttach(spec, n!, sketchFacts('web', QEMU), { machine: 'pc', fdsets: [1, 2], pciSlots: [0, 1, 2, 3, 4], freePorts: [], diskNames: [], nicNames: ['other'] });
  assert.deepEqual(p.issues, []);
  assert.deepEqual(p.actions, boot.hostActions, 'the same TAP and bridge port as at boot');
  assert.deepEqual(p.steps.map((s) => [s.command, s.undo?.command]), [['getfd', 'closefd'], ['netdev_add', 'netdev_del'], ['device_add', 'device_del']]);
  assert.deepEqual(p.steps[0]!.args, { fdname: 'tap-n1-0' });
  assert.equal(p.steps[0]!.fd, 'tap-n1-0');
  assert.deepEqual(p.steps[1]!.args, { ...bootNetdev, fd: 'tap-n1-0' }, 'boot\'s -netdev with the fd named as getfd named it');
  assert.deepEqual(p.steps[2]!.args, { ...bootDevice, addr: '0x5', romfile: '' }, 'boot\'s -device on the first free root-bus slot, without an option ROM');
  const q35 = planNicAttach({ ...spec, machine: 'q35' }, n!, sketchFacts('web', QEMU), { machine: 'q35', fdsets: [], pciSlots: [], freePorts: ['hp0'], diskNames: [], nicNames: [] });
  assert.deepEqual([q35.steps[2]!.args['bus'], q35.steps[2]!.args['addr']], ['hp0', '0x0']);
  const ovs = planNicAttach(spec, { ...n!, type: 'ovs', vlan: 7 }, sketchFacts('web', QEMU), { machine: 'pc', fdsets: [], pciSlots: [], freePorts: [], diskNames: [], nicNames: [] });
  assert.deepEqual(ovs.actions.map((a) => a.kind), ['tap', 'ovs-attach']);
  const refused = planNicAttach({ ...spec, machine: 'q35' }, { ...n!, vhost: true }, sketchFacts('web', QEMU), { machine: 'q35', fdsets: [], pciSlots: [], freePorts: [], diskNames: [], nicNames: ['n1'] });
  assert.deepEqual(refused.issues.map((i) => i.code), ['PLAN_PCI_EXHAUSTED', 'PLAN_DUPLICATE', 'PLAN_UNSUPPORTED']);
  const user = planNicAttach(spec, { ...n!, type: 'user' }, sketchFacts('web', QEMU), { machine: 'pc', fdsets: [], pciSlots: [], freePorts: [], diskNames: [], nicNames: [] });
  assert.equal(user.helpers.length, 1, 'user networking needs its passt helper, as at boot');
  assert.deepEqual(user.steps.map((x) => x.command), ['getfd', 'netdev_add', 'device_add']);
  assert.deepEqual(user.steps[1]!.args, { type: 'socket', id: 'net-n1', fd: 'passt-n1' }, 'QEMU 7.2 takes a getfd name synchronously only in the socket netdev');
});

/** Paths QEMU (pid) holds open. */
const tapFds = (pid: number): number => qemuFiles(pid).filter((f) => f === '/dev/net/tun').length;

async function guestLinks(sock: Socket, log: string, tag: string): Promise<string[]> {
  return (await guestSays(sock, log, tag, 'ls /sys/class/net')).split(',').filter((x) => x !== '');
}

const BRIDGE = 'wdnicbr0';

/** The inode of the peer of process `pid`'s connected unix stream socket (ss -xp), if it has one. */
function peerOf(pid: number): string | undefined {
  const out = spawnSync('ss', ['-xpn'], { encoding: 'utf8' }).stdout;
  const line = out.split('\n').find((l) => l.startsWith('u_str') && l.includes(`pid=${pid},`));
  return line === undefined ? undefined : line.trim().split(/\s+/)[7];
}

test('NIC attach/detach on a running guest: a TAP on a Linux bridge by fd, the guest pings a peer; detach leaves QEMU no TAP fd (removing while the guest is paused); missing bridge refused; a SIGKILLed attach is undone by the next command; the same on Open vSwitch with a VLAN', {
  skip: netSkipReason(), timeout: 600_000,
}, async (t) => {
  const w = netnsWorld(t, `wdtnic${process.pid}`, 'warden-nic-');
  nsRun(w.ns, ['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  nsRun(w.ns, ['ip', 'link', 'set', BRIDGE, 'up']);
  // The peer: a veth whose one end is a bridge port, the other holds 10.79.0.2.
  nsRun(w.ns, ['ip', 'link', 'add', 'nicpeer', 'type', 'veth', 'peer', 'name', 'nicport']);
  nsRun(w.ns, ['ip', 'link', 'set', 'nicport', 'master', BRIDGE, 'up']);
  nsRun(w.ns, ['ip', 'addr', 'add', '10.79.0.2/24', 'dev', 'nicpeer']);
  nsRun(w.ns, ['ip', 'link', 'set', 'nicpeer', 'up']);
  const ports = (): string[] => nsRun(w.ns, ['ls', `/sys/class/net/${BRIDGE}/brif`]).stdout.split(/\s+/).filter((l) => l !== '' && l !== 'nicport');
  // Every TAP of this VM starts with the same 10 characters (net/names: "wd" + 8 of the VM's hash).
  const strayTaps = (): string[] => w.links().filter((l) => l.startsWith(hostIfname(hostWideName(name, stateRootScope(w.env.stateRoot)), 'x').slice(0, 10)));
  const cli = (...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => inNetns(w.ns, `${SCENARIOS}#cli`, { stateRoot: w.env.stateRoot, argv }, 120_000, { keepMounts: true });
  const name = vmName('wdv-nic');
  const file = w.env.specFile({ name, disk: w.overlay('nic') });
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), machine: 'pc' }));
  const [vm] = await w.startVms([file]);
  const pid = vm!.pid;
  const m = openManager({ stateDir: w.env.stateRoot }); // records only: every command runs in the netns
  const rec0 = await m.store.read(name);
  await waitForText(vm!.serialLog, GUEST_READY_LINE, 120_000);
  const sock = await openConsole(m.store.paths(name).serialSocket, t);
  assert.deepEqual(await guestLinks(sock, vm!.serialLog, 'A'), ['lo']);
  const before = tapFds(pid);

  // Refused: a bridge that does not exist. Nothing recorded, no TAP, no fd in QEMU.
  const bad = await cli('nic', 'attach', name, '--bridge', 'wdnomissing', '--name', 'n0', '--json');
  assert.equal(bad.code, 6, bad.stderr);
  assert.match(bad.stdout + bad.stderr, /NET_BRIDGE_MISSING/);
  const afterBad = await m.store.read(name);
  assert.deepEqual([afterBad.hotplug ?? [], afterBad.undo, afterBad.spec['networks']], [[], rec0.undo, []]);
  assert.equal(tapFds(pid), before);
  assert.deepEqual(strayTaps(), [], 'no TAP left');

  // Attach: the TAP joins the bridge, QEMU holds it, the guest sees eth0 and pings the peer.
  const att = await cli('nic', 'attach', name, '--bridge', BRIDGE, '--name', 'n1', '--json');
  assert.equal(att.code, 0, att.stdout + att.stderr);
  const r = JSON.parse(att.stdout) as { state: string; mac: string; steps: string[] };
  assert.deepEqual([r.state, r.steps], ['attached', ['tap', 'bridge-attach', 'getfd', 'netdev_add', 'device_add']]);
  assert.equal(tapFds(pid), before + 1, 'QEMU holds the TAP fd');
  const taps = ports();
  assert.equal(taps.length, 1, 'one TAP on the bridge');
  assert.deepEqual(strayTaps(), taps, 'the TAP carries the VM\'s host-wide name (so the checks for strays below see it)');
  let links: string[] = [];
  for (let i = 0; i < 60 && !links.includes('eth0'); i++) { links = await guestLinks(sock, vm!.serialLog, `B${i}`); if (!links.includes('eth0')) await new Promise((res) => setTimeout(res, 500)); }
  assert.deepEqual(links, ['eth0', 'lo'], 'the guest sees the NIC appear');
  assert.equal(await guestSays(sock, vm!.serialLog, 'M', 'cat /sys/class/net/eth0/address'), `${r.mac},`);
  sock.write('ip addr add 10.79.0.1/24 dev eth0; ip link set eth0 up\n');
  let ping = '';
  for (let i = 0; i < 20 && !ping.includes('PONG'); i++) ping = await guestSays(sock, vm!.serialLog, `P${i}`, 'ping -c 1 -W 2 10.79.0.2 >/dev/null && echo PONG');
  assert.match(ping, /PONG/, 'the guest pings the peer over the bridge');
  const stored = await m.store.read(name);
  assert.deepEqual((stored.spec['networks'] as Array<{ name: string; bridge: string }>).map((x) => [x.name, x.bridge]), [['n1', BRIDGE]], 'the stored spec has the NIC');
  const ins = await cli('inspect', name);
  assert.match(ins.stdout, /hot-plugged nic n1 \(nic-n1\): persisted in the spec at /, ins.stdout + ins.stderr);

  // A paused guest cannot answer the unplug: detach ends `removing` (exit 8, nothing released yet).
  assert.equal((await cli('pause', name)).code, 0);
  const stuck = await cli('nic', 'detach', name, 'n1', '--json', '--timeout', '2');
  assert.equal(stuck.code, 8, stuck.stdout + stuck.stderr);
  assert.match(stuck.stdout + stuck.stderr, /VM_DEVICE_REMOVING/);
  assert.equal((await m.store.read(name)).hotplug?.[0]?.state, 'removing');
  assert.equal(tapFds(pid), before + 1, 'QEMU still holds the TAP while the guest has the NIC');
  assert.equal((await cli('resume', name)).code, 0);
  // Once the guest has let go, any later NIC command finishes the removal (here a detach of nothing).
  for (let i = 0; i < 30 && ((await m.store.read(name)).hotplug ?? []).length > 0; i++) {
    assert.equal((await cli('nic', 'detach', name, 'nothing')).code, 5);
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(tapFds(pid), before, 'QEMU holds no TAP fd');
  assert.deepEqual(ports(), []);
  assert.ok(!w.links().includes(taps[0]!), 'the TAP is gone');
  assert.deepEqual(await guestLinks(sock, vm!.serialLog, 'C'), ['lo'], 'the guest sees the NIC go');
  const afterDet = await m.store.read(name);
  assert.deepEqual([afterDet.hotplug ?? [], afterDet.undo, afterDet.spec['networks']], [[], rec0.undo, []]);

  // SIGKILL of the manager right after each step; the next command (a detach of nothing) undoes what it left.
  for (const killAfter of ['getfd', 'netdev_add', 'device_add']) {
    const step = killAfter;
    await assert.rejects(inNetns(w.ns, `${SCENARIOS}#attachKilled`, { stateRoot: w.env.stateRoot, vm: name, bridge: BRIDGE, nic: 'nk', killAfter }, 120_000, { keepMounts: true }), /without a result/);
    const half = await m.store.read(name);
    assert.equal(half.hotplug?.[0]?.state, 'attaching', `killed after ${killAfter}: the record says attaching`);
    assert.deepEqual((half.hotplug?.[0]?.net as { entries: Array<{ kind: string }> }).entries.map((e) => e.kind), ['delete-link', 'bridge-detach'], 'the TAP and its bridge port are journalled');
    assert.equal(tapFds(pid), before + 1, `killed after ${step}: QEMU holds the TAP`);
    const next = await cli('nic', 'detach', name, 'nothing');
    assert.equal(next.code, 5, next.stderr);
    const healed = await m.store.read(name);
    assert.deepEqual([healed.hotplug ?? [], healed.undo, healed.spec['networks']], [[], rec0.undo, []], `killed after ${step}: nothing recorded`);
    assert.equal(tapFds(pid), before, `killed after ${step}: QEMU holds no TAP fd`);
    assert.deepEqual(ports(), [], `killed after ${step}: no bridge port`);
    assert.deepEqual(strayTaps(), [], `killed after ${step}: no TAP`);
    const netdevs = await inNetns<string>(w.ns, `${SCENARIOS}#qmp`, { stateRoot: w.env.stateRoot, vm: name, command: 'human-monitor-command', args: { 'command-line': 'info network' } }, 60_000, { keepMounts: true });
    assert.doesNotMatch(netdevs, /net-nk/, `killed after ${step}: no netdev`);
  }

  // Open vSwitch (a private ovsdb-server and userspace datapath in the netns): a tagged port with the VM in external-ids, gone after detach.
  if (ovsSkipReason() === undefined) {
    const OVS = 'wdnicovs0';
    const { db } = startPrivateOvs(t, w.ns, OVS, '/tmp/warden-nic-ovs-');
    const ovs = (...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => inNetns(w.ns, `${SCENARIOS}#cli`, { stateRoot: w.env.stateRoot, argv, ovsDb: db }, 120_000, { keepMounts: true });
    const oa = await ovs('nic', 'attach', name, '--ovs', OVS, '--vlan', '42', '--name', 'o1', '--json');
    assert.equal(oa.code, 0, oa.stdout + oa.stderr);
    assert.deepEqual((JSON.parse(oa.stdout) as { steps: string[] }).steps, ['tap', 'ovs-attach', 'getfd', 'netdev_add', 'device_add']);
    const [port] = ovsPorts(db, OVS);
    assert.ok(port !== undefined && port.startsWith('wd'), 'the TAP is a port of the OVS bridge');
    assert.deepEqual([ovsGet(db, 'Port', port, 'tag'), ovsGet(db, 'Interface', port, 'external_ids:warden-vm'), ovsGet(db, 'Interface', port, 'external_ids:warden-nic')], ['42', name, 'o1']);
    assert.equal(tapFds(pid), before + 1);
    // Removing (paused guest), then the same detach again finishes it.
    assert.equal((await ovs('pause', name)).code, 0);
    assert.equal((await ovs('nic', 'detach', name, 'o1', '--timeout', '1')).code, 8);
    assert.equal((await ovs('resume', name)).code, 0);
    const od = await ovs('nic', 'detach', name, 'o1', '--json', '--timeout', '60');
    assert.equal(od.code, 0, od.stdout + od.stderr);
    assert.deepEqual(ovsPorts(db, OVS), [], 'no OVS port left');
    assert.equal(tapFds(pid), before, 'QEMU holds no TAP fd');
    assert.ok(!w.links().includes(port), 'the TAP is gone');
  } else t.diagnostic(`OVS part skipped: ${ovsSkipReason()}`);

  // --live-only: the spec stays; the VM's kill removes the hot-plugged TAP with the rest of the run.
  const live = await cli('nic', 'attach', name, '--bridge', BRIDGE, '--name', 'n2', '--live-only', '--json');
  assert.equal(live.code, 0, live.stdout + live.stderr);
  assert.deepEqual((await m.store.read(name)).spec['networks'], []);
  assert.equal(ports().length, 1);
  sock.destroy();
  assert.equal((await cli('kill', name)).code, 0);
  assert.deepEqual(ports(), [], 'no bridge port after the VM is gone');
  assert.deepEqual(strayTaps(), [], 'no TAP after the VM is gone');
});

test('user NIC (passt) hot-plugged: its own jailed passt on a socketpair, the guest fetches a page from the host through it; detach stops passt and leaves nothing; a SIGKILLed attach\'s passt is stopped by the next command; q35 root port; the NIC is there at the next boot', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : !existsSync(PASST_BINARY) ? `passt is not installed (${PASST_BINARY})` : false, timeout: 300_000,
}, async (t) => {
  const env = testEnv('warden-nic-user-');
  const m = openManager({ stateDir: env.stateRoot });
  const server = createServer((_req, res) => { res.end(`NIC-USER-PAGE-${process.pid}\n`); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => { server.close(); for (const v of await m.store.list()) await m.kill(v).catch(() => undefined); env.cleanup(); });
  const port = (server.address() as AddressInfo).port;
  const name = vmName('wdv-nicu');
  const file = env.specFile({ name });
  // q35: the NIC goes behind a reserved empty pcie-root-port.
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), machine: 'q35', hotplugSlots: 1 }));
  await m.create(file);
  const pid = (await m.start(name)).record.run!.qemu.pid;
  const log = m.store.paths(name).serialLog;
  await waitForText(log, GUEST_READY_LINE, 120_000);
  const sock = await openConsole(m.store.paths(name).serialSocket, t);
  const io = { stdout: '', stderr: '', out(x: string) { io.stdout += `${x}\n`; }, err(x: string) { io.stderr += `${x}\n`; } };
  assert.equal(await run(['nic', 'attach', name, '--user', '--name', 'u1', '--json', '--state-dir', env.stateRoot], io), 0, io.stdout + io.stderr);
  assert.deepEqual((JSON.parse(io.stdout) as { steps: string[] }).steps, ['helper passt', 'getfd', 'netdev_add', 'device_add']);
  const rec = await m.store.read(name);
  const helper = rec.helpers?.find((h) => h.from === 'networks[u1]');
  assert.ok(helper !== undefined && (await isAlive(new NodeFs(), helper.proc)), 'passt runs in its own jail');
  assert.notEqual(helper.uid, rec.run!.uid, 'passt has a uid of its own');
  assert.ok(rec.undo?.some((u) => u.kind === 'helper' && u.jailName === helper.jailName), 'the run\'s undo journal stops it with the VM');
  const qemuEnd = peerOf(helper.proc.pid);
  assert.ok(qemuEnd !== undefined && qemuFiles(pid).includes(`socket:[${qemuEnd}]`), 'QEMU holds the other end of passt\'s socketpair');
  let links: string[] = [];
  for (let i = 0; i < 60 && !links.includes('eth0'); i++) { links = await guestLinks(sock, log, `U${i}`); if (!links.includes('eth0')) await new Promise((res) => setTimeout(res, 500)); }
  assert.deepEqual(links, ['eth0', 'lo']);
  sock.write(`ip addr add ${USER_NET.guest}/${USER_NET.prefixLength} dev eth0; ip link set eth0 up\n`);
  let page = '';
  for (let i = 0; i < 20 && !page.includes('NIC-USER-PAGE'); i++) page = await guestSays(sock, log, `W${i}`, `timeout 5 wget -q -O - http://${USER_NET.gateway}:${port}/`);
  assert.match(page, new RegExp(`NIC-USER-PAGE-${process.pid}`), 'the guest reaches the host through passt');
  const io2 = { stdout: '', stderr: '', out(x: string) { io2.stdout += `${x}\n`; }, err(x: string) { io2.stderr += `${x}\n`; } };
  assert.equal(await run(['nic', 'detach', name, 'u1', '--json', '--timeout', '60', '--state-dir', env.stateRoot], io2), 0, io2.stdout + io2.stderr);
  assert.equal(await isAlive(new NodeFs(), helper.proc), false, 'passt is gone');
  assert.ok(!qemuFiles(pid).includes(`socket:[${qemuEnd}]`), 'QEMU holds no end of the socketpair');
  const after = await m.store.read(name);
  const clean = [[], [], rec.undo?.filter((u) => u.kind !== 'helper'), []];
  assert.deepEqual([after.hotplug ?? [], after.helpers ?? [], after.undo, after.spec['networks']], clean);

  // The manager SIGKILLed after getfd of a user NIC: the next command stops the half-attached NIC's passt.
  const killed = spawnSync(process.execPath, [CHILD, SCENARIOS, 'attachKilled', JSON.stringify({ stateRoot: env.stateRoot, vm: name, nic: 'uk', killAfter: 'getfd' })], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(killed.signal, 'SIGKILL', killed.stdout + killed.stderr);
  const half = await m.store.read(name);
  const orphan = half.helpers?.find((h) => h.from === 'networks[uk]');
  assert.ok(half.hotplug?.[0]?.state === 'attaching' && orphan !== undefined && (await isAlive(new NodeFs(), orphan.proc)), 'a half-attached NIC with its passt running');
  const io3 = { stdout: '', stderr: '', out(x: string) { io3.stdout += `${x}\n`; }, err(x: string) { io3.stderr += `${x}\n`; } };
  assert.equal(await run(['nic', 'detach', name, 'nothing', '--state-dir', env.stateRoot], io3), 5, io3.stderr);
  assert.equal(await isAlive(new NodeFs(), orphan.proc), false, 'its passt is gone');
  const healed = await m.store.read(name);
  assert.deepEqual([healed.hotplug ?? [], healed.helpers ?? [], healed.undo, healed.spec['networks']], clean);

  // Persisted: a NIC attached without --live-only is in the next boot (passt started by start, the guest has eth0).
  const io4 = { stdout: '', stderr: '', out(x: string) { io4.stdout += `${x}\n`; }, err(x: string) { io4.stderr += `${x}\n`; } };
  assert.equal(await run(['nic', 'attach', name, '--user', '--name', 'u2', '--state-dir', env.stateRoot], io4), 0, io4.stdout + io4.stderr);
  sock.destroy();
  await m.kill(name);
  const mark = readFileSync(log, 'latin1').length;
  const again = (await m.start(name)).record;
  assert.ok(again.helpers?.some((h) => h.from === 'networks[0]' && h.kind === 'passt'), 'start ran the NIC\'s passt');
  assert.match(String(await m.qmp(name, 'human-monitor-command', { 'command-line': 'info network' })), /nic-u2.*\s+.*net-u2: index=0,type=stream/);
  // The new boot's ready line: after what the log held before the kill (or anywhere, had start cut it).
  const booted = (): boolean => { const text = readFileSync(log, 'latin1'); return (text.length < mark ? text : text.slice(mark)).includes(GUEST_READY_LINE); };
  for (let i = 0; i < 1800 && !booted(); i++) await new Promise((r) => setTimeout(r, 100));
  assert.ok(booted(), 'the guest booted again');
  const sock2 = await openConsole(m.store.paths(name).serialSocket, t);
  assert.deepEqual(await guestLinks(sock2, log, 'R'), ['eth0', 'lo'], 'the guest boots with the NIC');
  sock2.destroy();
  sock.destroy();
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
