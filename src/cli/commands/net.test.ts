import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../main.js';
import { hostIfName } from '../../net/index.js';
import { loadNative } from '../../sys/index.js';
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
    assert.match(io.text(), /set-link wdtabc: RTM_NEWLINK master br0 up/);
    assert.match(io.text(), /delete-link wdtabc: RTM_DELLINK wdtabc/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ kind: 'tap', nic: 'n', ifname: 'x', queues: 3, vnetHdr: true, mac: 'm', fdNames: [] }]));
    const io2 = capture();
    assert.equal(await run(['net', 'steps', bad, '--json'], io2), 6);
    assert.equal((JSON.parse(io2.text()) as { error: { code: string } }).error.code, 'NET_BAD_ACTION');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('warden net cleanup refuses while a process holds the VM\'s TAP open, and removes it with --force', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: creates a TAP device');
  const vm = `wqa-nc${process.pid}`;
  const ifname = hostIfName(vm, 'n0');
  const state = mkdtempSync(join(tmpdir(), 'wqa-net-cli-'));
  const tap = loadNative().openTap(ifname, 1, true); // a live VM's TAP: held by an fd, so it has carrier once up
  t.after(() => {
    for (const fd of tap.fds) try { loadNative().closeFd(fd); } catch { /* closed by the test */ }
    spawnSync('ip', ['link', 'delete', ifname], { stdio: 'ignore' });
    rmSync(state, { recursive: true, force: true });
  });
  assert.equal(spawnSync('ip', ['link', 'set', ifname, 'up']).status, 0);
  const io = capture();
  assert.equal(await run(['net', 'cleanup', vm, '--no-ovs', '--state-dir', state], io), 4, io.errText());
  assert.match(io.errText(), new RegExp(`cannot clean up the network of VM ${vm}: a process holds its TAP device\\(s\\) ${ifname} open`));
  assert.match(io.errText(), /hint: or pass --force/);
  assert.ok(existsSync(`/sys/class/net/${ifname}`), 'the TAP is left alone');
  const io2 = capture();
  assert.equal(await run(['net', 'cleanup', vm, '--no-ovs', '--force', '--json', '--state-dir', state], io2), 0, io2.text());
  assert.deepEqual((JSON.parse(io2.text()) as { removed: unknown[] }).removed, [{ kind: 'link', name: ifname }]);
});

test('warden net steps and undo: an unreadable or non-JSON file is a usage error (exit 2) naming it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-net-cli-'));
  try {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{bad');
    for (const [argv, re] of [[['net', 'steps', join(dir, 'nope.json')], /reading the HostAction list .*nope\.json failed/],
      [['net', 'steps', bad], /bad\.json is not JSON/], [['net', 'undo', join(dir, 'nope.log')], /reading the undo log .*nope\.log failed/]] as const) {
      const io = capture();
      assert.equal(await run([...argv], io), 2, argv.join(' '));
      assert.match(io.errText(), re);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
