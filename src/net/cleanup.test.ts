import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProcessRunner, RunResult } from '../sys/index.js';
import { NodeFs } from '../sys/index.js';
import { cleanupVmNetwork, hostIfName, hostNetFacts, NetError } from './index.js';

function runner(answers: (line: string) => Partial<RunResult>): ProcessRunner & { calls: string[] } {
  const calls: string[] = [];
  return { calls, run: async (argv) => { calls.push(argv.join(' ')); return { code: 0, signal: null, stdout: '', stderr: '', ...answers(argv.join(' ')) }; } };
}

const mine = hostIfName('web1', 'net0', 'wdt');
const other = hostIfName('web2', 'net0', 'wdt');
const ovsList = JSON.stringify({ headings: ['name', 'external_ids'], data: [
  [mine, ['map', []]],
  ['custom-port', ['map', [['warden-vm', 'web1'], ['warden-nic', 'net9']]]],
  [other, ['map', [['warden-vm', 'web2']]]],
  ['web1', ['map', [['warden-vm', 'web10']]]],
] });
const links = JSON.stringify([{ ifname: 'lo' }, { ifname: mine }, { ifname: other }, { ifname: 'eth0' }]);

test("cleanup removes exactly the VM's OVS ports (by name or warden-vm) and links, OVS first", async () => {
  const r = runner((l) => (l.includes('list Interface') ? { stdout: ovsList } : l.endsWith('link show') ? { stdout: links } : {}));
  const res = await cleanupVmNetwork('web1', { runner: r, prefix: 'wdt', ovsDb: '/tmp/db.sock' });
  assert.equal(res.ovs, 'checked');
  assert.deepEqual(res.removed, [{ kind: 'ovs-port', name: mine }, { kind: 'ovs-port', name: 'custom-port' }, { kind: 'link', name: mine }]);
  assert.deepEqual(r.calls.filter((c) => c.includes('del') ), [
    `ovs-vsctl --db=unix:/tmp/db.sock --timeout=5 -- --if-exists del-port ${mine}`,
    'ovs-vsctl --db=unix:/tmp/db.sock --timeout=5 -- --if-exists del-port custom-port',
    `ip link delete dev ${mine}`,
  ]);
});

test('cleanup without ovsdb reports it unreachable and still removes links; failures are NET_UNDO', async () => {
  const r = runner((l) => (l.includes('list Interface') ? { code: 1, stderr: 'database connection failed' } : l.endsWith('link show') ? { stdout: links }
    : l.includes('delete') ? { code: 2, stderr: 'RTNETLINK answers: Operation not permitted' } : {}));
  await assert.rejects(cleanupVmNetwork('web1', { runner: r, prefix: 'wdt' }), (e: NetError) =>
    e.code === 'NET_UNDO' && (e.context['failures'] as unknown[]).length === 1);
  const ok = runner((l) => (l.includes('list Interface') ? { code: 1 } : l.endsWith('link show') ? { stdout: links } : {}));
  assert.deepEqual(await cleanupVmNetwork('web1', { runner: ok, prefix: 'wdt' }), { removed: [{ kind: 'link', name: mine }], ovs: 'unreachable' });
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
