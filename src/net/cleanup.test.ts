import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../sys/index.js';
import { FakeHost, linkError } from '../../test/net/fake-host.js';
import { cleanupVmNetwork, hostIfName, hostNetFacts, NetError, OvsdbError, ownerAlias } from './index.js';

const mine = hostIfName('web1', 'net0', 'wdt');
const other = hostIfName('web2', 'net0', 'wdt');

/** web1's TAP, web2's, a custom-named link whose alias says web1, and a few OVS ports. */
function host(rules: ConstructorParameters<typeof FakeHost>[0] = []): FakeHost {
  const h = new FakeHost(rules, { lo: 'loopback', eth0: 'veth' });
  h.add(mine, 'tun', true);
  h.add(other, 'tun', true);
  h.add('custom0', 'tun', true).alias = ownerAlias('web1', 'net5');
  h.add('custom1', 'tun', true).alias = ownerAlias('web10', 'net5');
  for (const p of [mine, other, 'web1', 'custom-port']) h.ovsPorts.set(p, 'ovsbr');
  h.ovsIds.set('custom-port', { 'warden-vm': 'web1', 'warden-nic': 'net9' });
  h.ovsIds.set('web1', { 'warden-vm': 'web10' });
  return h;
}

test("cleanup removes exactly the VM's OVS ports (by name) and links (by name or alias), OVS first", async () => {
  const h = host();
  const res = await cleanupVmNetwork('web1', { ...h.ports(), prefix: 'wdt', ovsDb: '/tmp/db.sock' });
  assert.equal(res.ovs, 'checked');
  assert.deepEqual(res.removed, [{ kind: 'ovs-port', name: mine }, { kind: 'ovs-port', name: 'custom-port' }, { kind: 'link', name: mine }, { kind: 'link', name: 'custom0' }]);
  assert.deepEqual(h.calls.filter((c) => /delPort|remove/.test(c)),
    [`ovs /tmp/db.sock delPort ${mine}`, 'ovs /tmp/db.sock delPort custom-port', `remove ${mine}`, 'remove custom0']);
  assert.deepEqual([...h.ovsPorts.keys()], [other, 'web1']);
});

test('cleanup without ovsdb reports it unreachable and still removes links; failures are NET_UNDO', async () => {
  const broken = host([[/interfaces/, new OvsdbError('connect', 'no db')], [/^remove custom0/, linkError('RTM_DELLINK', 'EPERM')]]);
  await assert.rejects(cleanupVmNetwork('web1', { ...broken.ports(), prefix: 'wdt' }), (e: NetError) =>
    e.code === 'NET_UNDO' && (e.context['failures'] as unknown[]).length === 1);
  const ok = host([[/interfaces/, new OvsdbError('connect', 'no db')]]);
  assert.deepEqual(await cleanupVmNetwork('web1', { ...ok.ports(), prefix: 'wdt' }),
    { removed: [{ kind: 'link', name: mine }, { kind: 'link', name: 'custom0' }], ovs: 'unreachable' });
});

test('host facts come from device nodes under the Fs root', async () => {
  const root = mkdtempSync(join(tmpdir(), 'warden-net-facts-'));
  try {
    mkdirSync(join(root, 'dev/net'), { recursive: true });
    writeFileSync(join(root, 'dev/net/tun'), '');
    assert.deepEqual(await hostNetFacts(new NodeFs(root)), { tun: true, vhostNet: false });
    writeFileSync(join(root, 'dev/vhost-net'), '');
    assert.deepEqual(await hostNetFacts(new NodeFs(root)), { tun: true, vhostNet: true });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
