/** User networking through passt in its own jail: the guest reaches a host service, a host forward reaches the guest, and a killed passt leaves nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './guest.js';
import { createServer, type AddressInfo } from 'node:net';
import { createServer as createHttp, get } from 'node:http';
import { join } from 'node:path';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { outsideView } from './outside.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';
import { waitGone } from './teardown.js';
import { inspectRecord } from './view.js';

const root = process.getuid?.() === 0;
const skip = !root ? 'needs root: the jailer switches uids' : !existsSync('/usr/bin/passt') ? 'passt is not installed' : false;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function fetchText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (b: Buffer) => { body += b.toString(); });
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

test('passt: guest -> host service and host forward -> guest; passt runs jailed as its own uid; kill -9 of passt then stop leaves nothing', { skip, timeout: 180_000 }, async (t) => {
  const token = `warden-host-${process.pid}`;
  const http = createHttp((_req, res) => res.end(`${token}\n`));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const hostPort = (http.address() as AddressInfo).port;
  const fwdPort = await freePort();
  const env = testEnv('warden-passt-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-passt');
  t.after(async () => { await m.kill(name).catch(() => undefined); http.close(); env.cleanup(); });
  await m.create(env.specFile({
    name, cmdline: `warden.ip=10.0.2.15/24 warden.gw=10.0.2.2 warden.http=8080 warden.fetch=http://10.0.2.2:${hostPort}/`,
    networks: [{ name: 'net0', type: 'user', forwards: [{ proto: 'tcp', host: fwdPort, guest: 8080 }] }],
  }));
  await m.start(name);
  const serial = m.store.paths(name).serialLog;
  await waitForText(serial, GUEST_READY_LINE, 60_000);
  await waitForText(serial, `WARDEN-FETCH-OK ${token}`, 60_000);
  assert.match(await fetchText(fwdPort), /warden guest/);

  const rec = await m.reconcile(name, true);
  const helper = rec.helpers?.[0];
  assert.ok(helper !== undefined && helper.kind === 'passt', 'the record names the passt helper');
  const qemu = await outsideView(m.fs, rec.run!.qemu.pid);
  const passt = await outsideView(m.fs, helper.proc.pid);
  assert.ok(qemu !== null && passt !== null);
  assert.ok(qemu.ownNamespaces.includes('net'), 'QEMU has no host network: slirp is gone from it');
  assert.ok(!(qemu.fds && Object.values(qemu.fds).some((f) => f.startsWith('/usr/lib/x86_64-linux-gnu/libslirp'))));
  assert.notEqual(passt.uid, 0);
  assert.notEqual(passt.uid, qemu.uid, 'passt has a uid of its own');
  assert.equal(passt.uid, helper.uid);
  assert.ok(passt.ownNamespaces.includes('mnt'), 'own mount namespace');
  assert.ok(passt.capEff === '0000000000000000' || passt.ownNamespaces.includes('user'), `CapEff ${passt.capEff} outside its own user namespace`);
  assert.ok(!passt.ownNamespaces.includes('net'), 'passt uses the host network namespace for its sockets');
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { argv: string[]; manifest: Array<{ kind: string; resource: string }> };
  assert.ok(!plan.argv.some((a) => a.includes('"type":"user"')), 'QEMU keeps no slirp netdev');
  assert.ok(plan.manifest.some((e) => e.kind === 'helper' && e.resource === helper.jailName));
  const shown = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.ok(shown.helpers.some((h) => h.alive && h.uid === helper.uid));

  process.kill(helper.proc.pid, 'SIGKILL');
  assert.ok(await waitGone(m.fs, helper.proc, 5000));
  const after = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.ok(after.helpers.some((h) => !h.alive), 'a dead helper is reported with the VM');
  await m.stop(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(helper.jailName, env.stateRoot), [], 'nothing of the helper either');
});

test('the manager killed after passt started (before QEMU\'s jail, before cont): the next command stops passt too', { skip, timeout: 180_000 }, async (t) => {
  const env = testEnv('warden-passt-die-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  for (const step of ['jail', 'cont']) {
    const name = vmName(`wdv-pdie-${step}`);
    await m.create(env.specFile({ name, networks: [{ name: 'net0', type: 'user' }] }));
    const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'bin.js'), 'start', name, '--state-dir', env.stateRoot],
      { env: { ...process.env, WARDEN_TEST_DIE_BEFORE: step }, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const helper = (await m.store.read(name)).helpers?.[0];
    assert.ok(helper !== undefined, 'passt was recorded before the manager died');
    assert.notDeepEqual(leftovers(helper.jailName, env.stateRoot), [], 'passt still runs until reconcile');
    const rec = await m.reconcile(name);
    assert.equal(rec.lastExit?.reason, 'interrupted');
    assert.equal(rec.helpers, undefined);
    assert.deepEqual(leftovers(name, env.stateRoot), []);
    assert.deepEqual(leftovers(helper.jailName, env.stateRoot), [], `nothing of passt left after dying before ${step}`);
  }
});

test('a forwarded port that is taken: passt exits at start, and start fails naming it, leaving nothing', { skip, timeout: 120_000 }, async (t) => {
  const holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  const taken = (holder.address() as AddressInfo).port;
  const env = testEnv('warden-passt-taken-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-ptaken');
  t.after(async () => { await m.kill(name).catch(() => undefined); holder.close(); env.cleanup(); });
  await m.create(env.specFile({ name, networks: [{ name: 'net0', type: 'user', forwards: [{ proto: 'tcp', host: taken, guest: 8080 }] }] }));
  await assert.rejects(m.start(name), (e: unknown) => {
    const err = e as { code?: string; message?: string; suggestions?: string[] };
    return err.code === 'VM_START_FAILED' && /passt/.test(err.message ?? '') && (err.suggestions ?? []).some((s) => s.includes(`${taken}`));
  });
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(`${name}-passt-net0`, env.stateRoot), []);
});
