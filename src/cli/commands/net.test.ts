import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../main.js';
import type { Io } from '../output.js';

function capture(): Io & { text: () => string; errText: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { out: (t) => out.push(t), err: (t) => err.push(t), text: () => out.join('\n'), errText: () => err.join('\n') };
}

test('warden net names prints deterministic names and MACs, as JSON too', async () => {
  const io = capture();
  assert.equal(await run(['net', 'names', 'web1', 'net0', 'net1', '--prefix', 'wdt', '--json'], io), 0);
  const rows = JSON.parse(io.text()) as Array<{ nic: string; ifname: string; mac: string }>;
  assert.deepEqual(rows.map((r) => r.nic), ['net0', 'net1']);
  assert.ok(rows.every((r) => r.ifname.startsWith('wdt') && r.ifname.length === 14 && /^52:54:00:/.test(r.mac)));
});

test('warden net steps is a dry run of a HostAction file; bad actions exit 6 with NET_BAD_ACTION', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-net-cli-'));
  try {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify([{ kind: 'tap', nic: 'n', ifname: 'wdtabc', queues: 1, vnetHdr: true, mac: '52:54:00:00:00:01', fdNames: ['t'] },
      { kind: 'bridge-attach', nic: 'n', ifname: 'wdtabc', bridge: 'br0' }]));
    const io = capture();
    assert.equal(await run(['net', 'steps', good], io), 0);
    assert.match(io.text(), /ip link set dev wdtabc master br0/);
    assert.match(io.text(), /ip link delete dev wdtabc/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ kind: 'tap', nic: 'n', ifname: 'x', queues: 3, vnetHdr: true, mac: 'm', fdNames: [] }]));
    const io2 = capture();
    assert.equal(await run(['net', 'steps', bad, '--json'], io2), 6);
    assert.equal((JSON.parse(io2.text()) as { error: { code: string } }).error.code, 'NET_BAD_ACTION');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
