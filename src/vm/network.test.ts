import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { netSkipReason, nsRun } from '../../test/net/netns.js';
import { ownerAlias } from '../net/index.js';
import { netnsWorld } from './netns-world.js';
import { leftovers, vmName, waitForText } from './testing.js';

// Every warden command runs in a child node process inside a netns this test made; the
// bridge lives there too, so guest traffic never touches the host's network.
const BRIDGE = 'wdfbr0';

test('two jailed VMs on a Linux bridge (in a test netns) ping each other through TAP fds; stopping them removes the TAPs', { skip: netSkipReason(), timeout: 600_000 }, async (t) => {
  const w = netnsWorld(t, `wdfb1${process.pid}`, 'warden-netfix-');
  // Registered after netnsWorld's teardown, so it runs once the netns is deleted.
  t.after(() => {
    assert.equal(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').some((l) => l.split(' ')[0] === w.ns), false, `netns ${w.ns} is gone`);
    assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false, 'the bridge went with the netns');
  });
  nsRun(w.ns, ['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  nsRun(w.ns, ['ip', 'link', 'set', BRIDGE, 'up']);
  const members = (): string[] => nsRun(w.ns, ['ls', `/sys/class/net/${BRIDGE}/brif`]).stdout.split(/\s+/).filter((l) => l !== '');
  const net = [{ name: 'n0', type: 'bridge', bridge: BRIDGE }];
  const names = [vmName('wdf-net-a'), vmName('wdf-net-b')];
  const vms = await w.startVms([
    w.env.specFile({ name: names[0]!, networks: net, disk: w.overlay('a'), cmdline: 'warden.ip=10.77.0.1/24' }),
    w.env.specFile({ name: names[1]!, networks: net, disk: w.overlay('b'), cmdline: 'warden.ip=10.77.0.2/24 warden.ping=10.77.0.1' }),
  ]);
  const taps = vms.flatMap((v) => v.taps);
  assert.equal(taps.length, 2);
  // While they run: each TAP is in the netns (not the host's), a port of the bridge, and
  // carries its VM's owner alias (what cleanup by VM name looks for).
  assert.deepEqual(members().sort(), [...taps].sort());
  for (const v of vms) {
    const tap = v.taps[0]!;
    assert.ok(w.links().includes(tap), `TAP ${tap} exists in the netns`);
    assert.equal(nsRun(w.ns, ['cat', `/sys/class/net/${tap}/ifalias`]).stdout.trim(), ownerAlias(v.name, 'n0'));
  }
  // b pings a over the bridge: an echo reply proves traffic both ways. The line may arrive in pieces.
  const pinger = vms[1]!;
  await waitForText(pinger.serialLog, 'WARDEN-PING-', 240_000);
  assert.match(await waitForText(pinger.serialLog, 'WARDEN-PING-OK 10.77.0.1', 5_000), /WARDEN-PING-OK 10\.77\.0\.1/);
  // A graceful stop needs each guest's ACPI listener, up once it printed its ready line.
  for (const v of vms) await waitForText(v.serialLog, 'WARDEN-GUEST-READY', 120_000);
  assert.deepEqual(await w.run('stopAll', { names }, 300_000), ['stopped', 'stopped']);
  assert.deepEqual(members(), [], 'the bridge has no port left');
  assert.deepEqual(w.links().filter((l) => taps.includes(l)), [], 'no TAP remains');
  for (const n of names) assert.deepEqual(leftovers(n, w.env.stateRoot), []);
  // The bridge is the netns's own, never the host's; it goes with the netns (checked after teardown).
  assert.ok(w.links().includes(BRIDGE), 'the bridge is in the netns');
  assert.equal(existsSync(`/sys/class/net/${BRIDGE}`), false, 'no such bridge in the host netns');
});
