/** NIC hot-plug through wardend (serving from a test netns): the CLI routes to the daemon, POST/DELETE /v1/vms/NAME/devices carry the NIC, QEMU gets and drops the TAP fd. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type Io } from '../../src/cli/index.js';
import { GUEST_READY_LINE } from '../../src/vm/guest.js';
import { leftovers, testEnv, vmName, waitForText } from '../../src/vm/testing.js';
import { createNetns, netSkipReason, nsRun } from '../net/netns.js';
import { http, removeDir, socketDir, startDaemonProc } from './helpers.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

const tapFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).filter((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun'; } catch { return false; } }).length;

const BRIDGE = 'wdapibr0';

test('warden nic attach/detach through the daemon: the NIC body of POST .../devices, DELETE .../devices/NIC as an operation, the TAP fd in and out of QEMU; refusals', {
  skip: netSkipReason(), timeout: 240_000,
}, async (t) => {
  const env = testEnv('warden-api-nic-');
  const sdir = socketDir();
  const socket = join(sdir, 'w.sock');
  const ns = `wdtapinic${process.pid}`;
  const name = vmName('wda-nic');
  let d: Awaited<ReturnType<typeof startDaemonProc>> | undefined;
  // Registered before the netns: its teardown (which kills whatever still runs inside) comes after this.
  t.after(async () => {
    if (d !== undefined) await http(socket, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    await d?.stop();
    env.cleanup();
    removeDir(sdir);
  });
  createNetns(t, ns);
  nsRun(ns, ['ip', 'link', 'add', BRIDGE, 'type', 'bridge']);
  nsRun(ns, ['ip', 'link', 'set', BRIDGE, 'up']);
  const ports = (): string[] => nsRun(ns, ['ls', `/sys/class/net/${BRIDGE}/brif`]).stdout.split(/\s+/).filter((l) => l !== '');
  d = await startDaemonProc(socket, env.stateRoot, {}, ['nsenter', `--net=/run/netns/${ns}`, '--']);
  const file = env.specFile({ name });
  writeFileSync(file, JSON.stringify({ ...(JSON.parse(readFileSync(file, 'utf8')) as object), machine: 'pc' }));
  const cli = async (...args: string[]): Promise<{ code: number; io: ReturnType<typeof capture> }> => {
    const io = capture();
    return { code: await run([...args, '--state-dir', env.stateRoot], io), io };
  };
  assert.equal((await cli('create', file)).code, 0);
  assert.equal((await cli('start', name)).code, 0);
  await waitForText(join(env.stateRoot, 'vms', name, 'serial.log'), GUEST_READY_LINE, 90_000);
  const pid = (await http(socket, 'GET', `/v1/vms/${name}`)).json.run.qemu.pid as number;
  const before = tapFds(pid);

  const a = await cli('nic', 'attach', name, '--bridge', BRIDGE, '--name', 'n1', '--json');
  assert.equal(a.code, 0, a.io.stdout + a.io.stderr);
  const dup = await cli('nic', 'attach', name, '--bridge', BRIDGE, '--name', 'n1');
  assert.equal(dup.code, 4, dup.io.stderr);
  assert.match(dup.io.stderr, /already has a NIC named n1.*VM_HOTPLUG_FAILED/);
  assert.equal(JSON.parse(a.io.stdout).state, 'attached');
  assert.equal(tapFds(pid), before + 1, 'QEMU holds the TAP after attach through the daemon');
  assert.equal(ports().length, 1, 'the TAP is a port of the netns bridge');
  const missing = await http(socket, 'POST', `/v1/vms/${name}/devices?wait=30`, JSON.stringify({ kind: 'nic', name: 'n2', type: 'bridge', bridge: 'wdnosuchbr' }));
  assert.equal(missing.json.error?.code, 'NET_BRIDGE_MISSING', missing.text);
  const badMac = await cli('nic', 'attach', name, '--bridge', BRIDGE, '--name', 'n3', '--mac', 'not-a-mac');
  assert.equal(badMac.code, 2, badMac.io.stderr);
  assert.match(badMac.io.stderr, /mac.*SPEC_VALUE/s);
  assert.equal(ports().length, 1, 'refusals left no port');
  // DELETE names the NIC by its name alone: the VM has a NIC n1 and no disk n1.
  const accepted = await http(socket, 'DELETE', `/v1/vms/${name}/devices/n1`);
  assert.equal(accepted.status, 202, accepted.text);
  const done = await http(socket, 'GET', `/v1/operations/${accepted.json.operation.id as string}/wait?wait=60`);
  assert.deepEqual([done.json.operation.action, done.json.operation.status, done.json.operation.result?.state], ['detach-nic', 'succeeded', 'detached'], done.text);
  assert.equal(tapFds(pid), before, 'QEMU holds no TAP fd after detach');
  assert.deepEqual(ports(), []);
  const rec = (await http(socket, 'GET', `/v1/vms/${name}`)).json;
  assert.deepEqual(rec.spec.networks, [], 'the stored spec lost the NIC again');
  assert.equal((await cli('kill', name)).code, 0);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
