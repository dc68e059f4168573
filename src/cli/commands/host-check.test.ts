/** validate's host network warnings against a stand-in for /sys/class/net (the CLI path is tested in plan.test.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSpec } from '../../spec/index.js';
import { createServer, type AddressInfo } from 'node:net';
import { hostNetworkWarnings, netBindError, tcpBindErrorSync } from './host-check.js';

test('a bridge NIC on a device that is not a Linux bridge is warned about; an existing bridge and user NICs are not', async (t) => {
  const sys = mkdtempSync(join(tmpdir(), 'wqa-sysnet-'));
  t.after(() => rmSync(sys, { recursive: true, force: true }));
  mkdirSync(join(sys, 'br0', 'bridge'), { recursive: true });
  mkdirSync(join(sys, 'eth0'));
  const text = 'apiVersion: warden/v1\nname: h\nnetworks:\n  - { name: a, type: bridge, bridge: br0 }\n  - { name: b, type: bridge, bridge: eth0 }\n  - { name: c, type: user }\n  - { name: d, type: macvtap, link: eth0 }\n';
  const w = await hostNetworkWarnings({ file: 'h.yaml', text, spec: parseSpec(text, 'h.yaml') }, sys);
  assert.deepEqual(w.map((i) => [i.path, i.line]), [['networks[1].bridge', 5]]);
  assert.match(w[0]!.message, /eth0 exists but is not a Linux bridge: start would fail \(NET_NOT_A_BRIDGE\)/);
});

test('the TCP port check without node:net answers as net.Server does: taken, free, an address not on this host', async (t) => {
  const held = createServer();
  await new Promise<void>((r) => held.listen({ port: 0, host: '127.0.0.1', exclusive: true }, r));
  t.after(() => held.close());
  const taken = (held.address() as AddressInfo).port;
  const cases: Array<[string, number]> = [['127.0.0.1', taken], ['127.0.0.1', 0], ['192.0.2.1', taken]];
  for (const [address, port] of cases) {
    const sync = tcpBindErrorSync(address, port);
    assert.notEqual(sync, undefined, 'the tcp_wrap binding is there on Node 20');
    assert.equal(sync, await netBindError('tcp', address, port), `${address}:${port}`);
  }
  assert.equal(tcpBindErrorSync('127.0.0.1', taken), 'EADDRINUSE');
});
