/**
 * The guest agent: a fault-injecting peer for what a hostile guest can send (stale bytes
 * before the sync, control characters, a flood, silence), and the real qemu-guest-agent in
 * the Debian image: inspect shows its OS and addresses, and stop falls back to the agent's
 * guest-shutdown when the guest ignores the ACPI power button.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { agentCommand, guestInfo } from './agent.js';
import { openManager } from './open.js';
import { inspectRecord, formatInspection } from './view.js';
import { leftovers, testEnv, vmName } from './testing.js';
import type { Progress } from './steps.js';

/** A peer on a unix socket that answers each JSON line with `reply(request)`. */
async function fakeAgent(dir: string, reply: (req: { execute: string; arguments?: { id?: number } }, sock: Socket) => void): Promise<{ path: string; server: Server }> {
  const path = join(dir, `qga-${Math.random().toString(36).slice(2)}.sock`);
  const server = createServer((sock) => {
    // close() leaves accepted connections open: the test's cleanup ends them too.
    server.once('close', () => sock.destroy());
    sock.on('error', () => undefined); // the client hanging up on a flood resets the connection
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1').replace(/\xff/g, '');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) { const line = buf.slice(0, i); buf = buf.slice(i + 1); if (line.trim()) reply(JSON.parse(line), sock); }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { path, server };
}

const sync = (req: { arguments?: { id?: number } }, sock: Socket): void => {
  sock.write(Buffer.concat([Buffer.from('{"return": 1}\nleftover junk'), Buffer.from([0xff]), Buffer.from(`{"return": ${req.arguments?.id}}\n`)]));
};

test('agent client: stale bytes before the sync are dropped; guest strings are cleaned and checked; a flood or silence is an error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-qga-'));
  const servers: Server[] = [];
  t.after(() => { for (const s of servers) { s.close(); s.emit('close'); } rmSync(dir, { recursive: true, force: true }); });
  const good = await fakeAgent(dir, (req, sock) => {
    if (req.execute === 'guest-sync-delimited') sync(req, sock);
    else if (req.execute === 'guest-get-osinfo') sock.write(`${JSON.stringify({ return: { 'pretty-name': 'Evil\u001b[2JOS', 'kernel-release': '6.1', machine: 'x86_64' } })}\n`);
    else if (req.execute === 'guest-network-get-interfaces') {
      sock.write(`${JSON.stringify({ return: [{ name: 'eth0', 'hardware-address': '52:54:00:12:34:56', 'ip-addresses': [
        { 'ip-address-type': 'ipv4', 'ip-address': '10.0.2.15', prefix: 24 }, { 'ip-address-type': 'ipv4', 'ip-address': '1.2.3.4; rm -rf /' }, { 'ip-address-type': 'x', 'ip-address': '1.1.1.1' }] }] })}\n`);
    }
  });
  servers.push(good.server);
  const info = await guestInfo(good.path, 5000);
  assert.equal(info.os?.name, 'Evil?[2JOS', 'control characters never reach a terminal');
  assert.deepEqual(info.nics, [{ name: 'eth0', mac: '52:54:00:12:34:56', addresses: [{ nic: 'eth0', address: '10.0.2.15', family: 'ipv4' }] }]);

  const flood = await fakeAgent(dir, (req, sock) => { if (req.execute === 'guest-sync-delimited') sock.write(Buffer.alloc(300 * 1024, 0x41)); });
  servers.push(flood.server);
  await assert.rejects(guestInfo(flood.path, 5000), /more than 262144 bytes/);
  const mute = await fakeAgent(dir, () => undefined);
  servers.push(mute.server);
  await assert.rejects(guestInfo(mute.path, 300), /did not answer in time/);
  const refusing = await fakeAgent(dir, (req, sock) => { if (req.execute === 'guest-sync-delimited') sync(req, sock); else sock.write('{"error": {"class": "GenericError", "desc": "no\\u0007"}}\n'); });
  servers.push(refusing.server);
  await assert.rejects(agentCommand(refusing.path, 'guest-info'), /the guest agent refused: no\?/);
});

/** Runs a shell command in the guest through the agent (guest-exec); its exit status. */
async function guestSh(sock: string, script: string): Promise<number | undefined> {
  const { pid } = await agentCommand(sock, 'guest-exec', { path: '/bin/sh', arg: ['-c', script] }, 10_000) as { pid: number };
  for (let i = 0; i < 60; i++) {
    const st = await agentCommand(sock, 'guest-exec-status', { pid }, 5000) as { exited: boolean; exitcode?: number };
    if (st.exited) return st.exitcode;
    await new Promise((r) => setTimeout(r, 1000));
  }
  return assert.fail(`guest-exec of ${JSON.stringify(script)} did not finish within a minute`);
}

/** The Debian image the image engineer's scripts/build-image.sh caches, or null. */
function debianImage(): string | null {
  if (process.env['WARDEN_DEBIAN_IMAGE']) return process.env['WARDEN_DEBIAN_IMAGE'];
  const dir = '/var/cache/qemu-warden';
  const all = existsSync(dir) ? readdirSync(dir).filter((f) => /^debian-12-.*\.qcow2$/.test(f)).map((f) => join(dir, f)) : [];
  return all.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0] ?? null;
}

const image = debianImage();
const SKIP = process.getuid?.() !== 0 ? 'needs root: the jailer switches uids'
  : image === null ? 'no Debian image (scripts/build-image.sh caches it under /var/cache/qemu-warden; or set WARDEN_DEBIAN_IMAGE)' : false;

test('Debian from its disk under UEFI, with qemu-guest-agent: inspect shows its OS and addresses; stop falls back to guest-shutdown when ACPI is ignored', { skip: SKIP, timeout: 900_000 }, async (t) => {
  const env = testEnv('warden-qga-');
  const said: string[] = [];
  const progress: Progress = {
    begin: () => undefined, end: (m) => { said.push(m); }, step: () => undefined, done: (l) => { said.push(l); },
    failed: (l) => { said.push(`FAIL ${l}`); }, warn: (m) => { said.push(`warning: ${m}`); }, info: (m) => { said.push(m); },
  };
  const m = openManager({ stateDir: env.stateRoot, progress });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const overlay = join(env.dir, 'debian.qcow2');
  assert.equal(spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image!, '-F', 'qcow2', overlay]).status, 0);
  const name = vmName('wdv-qga');
  const file = join(env.dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({
    // UEFI from the disk (the image's own GRUB), the disk first in the boot order.
    apiVersion: 'warden/v1', name, memory: '768Mi', accel: 'tcg', guestAgent: true, firmware: 'uefi',
    disks: [{ name: 'root', image: overlay, format: 'qcow2', allowDirs: [dirname(image!)], bootIndex: 0 }],
    networks: [{ name: 'u', type: 'user' }],
  }));
  await m.create(file);
  const started = await m.start(name);
  assert.equal(started.record.phase, 'running');
  const sock = join(m.store.paths(name).dir, 'qga.sock');

  let info = null;
  for (const deadline = Date.now() + 600_000; info === null && Date.now() < deadline;) {
    info = await guestInfo(sock, 5000).catch(() => null);
    if (info === null) await new Promise((r) => setTimeout(r, 3000));
  }
  assert.ok(info !== null, 'the guest agent answered within 10 minutes');
  t.diagnostic(`guest: ${JSON.stringify(info.os)}`);
  assert.match(info.os?.name ?? '', /Debian/);
  const text = formatInspection(await inspectRecord(m.fs, m.store, await m.store.read(name)));
  assert.match(text, /guest OS: Debian GNU\/Linux 12/);
  assert.match(text, /guest addresses: .*10\.0\.2\.15/);
  assert.equal(await guestSh(sock, 'test -d /sys/firmware/efi'), 0, 'the guest booted through UEFI (/sys/firmware/efi exists)');

  // The power button's ACPI driver unbound: the button press reaches nobody, the guest ignores ACPI.
  const unbind = 'n=0; for d in /sys/bus/acpi/drivers/button/LNXPWRBN:*; do [ -e "$d" ] || continue; printf %s "${d##*/}" > /sys/bus/acpi/drivers/button/unbind || exit 1; n=$((n+1)); done; [ $n -gt 0 ]';
  assert.equal(await guestSh(sock, unbind), 0, 'the power button unbound in the guest');
  const stopped = await m.stop(name, { timeoutS: 90 });
  assert.equal(stopped.phase, 'stopped');
  assert.ok(said.some((l) => l.startsWith('warning: the guest did not answer the ACPI power button')), said.join('\n'));
  assert.ok(said.includes('guest powered off (guest agent)'), said.join('\n'));
  assert.match(stopped.lastExit?.detail ?? '', /guest powered off/);
  await m.delete(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
