import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stableMac, type HostAction } from '../net/index.js';
import { realBackends } from './backends.js';

const linkExists = (name: string): boolean => spawnSync('ip', ['link', 'show', 'dev', name]).status === 0;

/** Waits (bounded by a generous deadline, not a count of tries) until link `name` is gone. */
async function waitLinkGone(name: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; linkExists(name) && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
}

test('host networking whose final undo record cannot be written closes its TAP fds (the TAP vanishes)', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to create a TAP');
  if (!existsSync('/dev/net/tun')) return t.skip('no /dev/net/tun');
  const dir = mkdtempSync(join(tmpdir(), 'warden-review-backends-'));
  const ifname = `wdr${process.pid % 100000}`;
  t.after(() => { spawnSync('ip', ['link', 'delete', ifname]); rmSync(dir, { recursive: true, force: true }); });
  const net = realBackends({ stateRoot: dir, jail: false }).net;
  const actions: HostAction[] = [{ kind: 'tap', nic: 'net0', ifname, queues: 1, vnetHdr: true, mac: stableMac('wdr', 'net0'), fdNames: ['net0.tap0'] }];
  // A clean run first, to learn how many times the log is journalled before the final record.
  let calls = 0;
  const fds = await net.apply('wdr', actions, async () => { calls++; });
  assert.ok(linkExists(ifname), 'the TAP exists while its fd is open');
  for (const fd of fds.values()) closeSync(fd);
  await waitLinkGone(ifname);
  assert.equal(linkExists(ifname), false, 'closing the fd removes the TAP');
  let n = 0;
  await assert.rejects(net.apply('wdr', actions, async () => { if (++n === calls) throw new Error('disk full'); }), /disk full/);
  await waitLinkGone(ifname);
  assert.equal(linkExists(ifname), false, 'the failed apply left no open fd keeping the TAP alive');
});
