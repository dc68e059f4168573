/** tpm: true: swtpm in its own jail serves QEMU's TPM (query-tpm, /dev/tpm0 in the guest), its state survives a restart, and a killed swtpm leaves nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { outsideView } from './outside.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';
import { waitGone } from './teardown.js';
import { inspectRecord } from './view.js';

const root = process.getuid?.() === 0;
const skip = !root ? 'needs root: the jailer switches uids' : !existsSync('/usr/bin/swtpm') ? 'swtpm is not installed' : false;

const STATE_FILE = 'tpm2-00.permall';

/** The serial log of the last start (the log writer marks each) once the guest is up in it. */
async function readyThisRun(serial: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = readFileSync(serial, 'latin1');
    const run = s.slice(s.lastIndexOf('--- warden: VM'));
    if (run.includes(GUEST_READY_LINE)) return run;
    if (Date.now() > deadline) throw new Error(`the restarted guest did not come up; its log ends with ${run.slice(-800)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The bytes of the TPM's permanent state that are random (its seeds): where two freshly made states differ. */
function randomPositions(a: Buffer, b: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) out.push(i);
  return out;
}

test('tpm: swtpm jailed as its own uid backs QEMU\'s TPM, the guest sees /dev/tpm0, state persists across restarts, kill -9 then stop leaves nothing', { skip, timeout: 240_000 }, async (t) => {
  const env = testEnv('warden-tpm-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-tpm');
  const other = vmName('wdv-tpm2');
  t.after(async () => { for (const n of [name, other]) await m.kill(n).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name, extra: { tpm: true } }));
  const stateDir = join(m.store.paths(name).dir, 'tpm');

  await m.start(name);
  const serial = m.store.paths(name).serialLog;
  const text = await waitForText(serial, GUEST_READY_LINE, 60_000);
  assert.match(text, /WARDEN-TPM \/dev\/tpm0 version 2/, 'the guest kernel found the TPM (tpm_crb)');
  const tpms = (await m.qmp(name, 'query-tpm')) as Array<{ model: string; options: { type: string; data: { chardev: string } } }>;
  assert.deepEqual(tpms.map((x) => [x.model, x.options.type]), [['tpm-crb', 'emulator']]);

  const rec = await m.reconcile(name, true);
  const helper = rec.helpers?.find((h) => h.kind === 'swtpm');
  assert.ok(helper !== undefined, 'the record names the swtpm helper');
  const qemu = await outsideView(m.fs, rec.run!.qemu.pid);
  const swtpm = await outsideView(m.fs, helper.proc.pid);
  assert.ok(qemu !== null && swtpm !== null);
  assert.notEqual(swtpm.uid, 0);
  assert.notEqual(swtpm.uid, qemu.uid, 'swtpm has a uid of its own');
  assert.equal(swtpm.capEff, '0000000000000000', 'no capabilities');
  assert.ok(swtpm.ownNamespaces.includes('mnt'), 'own mount namespace');
  assert.ok(swtpm.ownNamespaces.includes('net'), 'no network: its channels are fds');
  assert.equal(statSync(stateDir).uid, swtpm.uid, 'the state directory is lent to swtpm\'s uid while it runs');
  assert.deepEqual(readdirSync(`/proc/${helper.proc.pid}/root/usr/bin`), ['swtpm'], 'swtpm\'s view holds no other program');
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { manifest: Array<{ kind: string; resource: string }> };
  assert.ok(plan.manifest.some((e) => e.kind === 'helper' && e.resource === helper.jailName));
  const shown = await inspectRecord(m.fs, m.store, rec);
  assert.ok(shown.helpers.some((h) => h.kind === 'swtpm' && h.alive && h.uid === helper.uid));

  await m.stop(name);
  assert.ok(await waitGone(m.fs, helper.proc, 5000));
  const first = readFileSync(join(stateDir, STATE_FILE));
  assert.equal(statSync(stateDir).uid, 0, 'root\'s again once swtpm is gone');
  assert.equal(statSync(join(stateDir, STATE_FILE)).uid, 0);

  // A second VM's fresh TPM tells which bytes are random (seeds); the restarted TPM must keep ours.
  await m.create(env.specFile({ name: other, extra: { tpm: true } }));
  await m.start(other);
  await waitForText(m.store.paths(other).serialLog, GUEST_READY_LINE, 60_000);
  await m.stop(other);
  const fresh = readFileSync(join(m.store.paths(other).dir, 'tpm', STATE_FILE));
  const seeds = randomPositions(first, fresh);
  assert.ok(seeds.length >= 64, `two TPMs differ in their seeds (${seeds.length} bytes)`);

  await m.start(name);
  const boot2 = await readyThisRun(serial, 60_000);
  assert.match(boot2, /WARDEN-TPM \/dev\/tpm0 version 2/, 'the restarted guest finds its TPM, on the kept state');
  const rec2 = await m.reconcile(name, true);
  const helper2 = rec2.helpers!.find((h) => h.kind === 'swtpm')!;
  assert.equal(statSync(stateDir).uid, helper2.uid);
  process.kill(helper2.proc.pid, 'SIGKILL');
  assert.ok(await waitGone(m.fs, helper2.proc, 5000));
  const after = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.ok(after.helpers.some((h) => h.kind === 'swtpm' && !h.alive), 'a dead swtpm is reported with the VM');
  await m.stop(name);
  const second = readFileSync(join(stateDir, STATE_FILE));
  const kept = seeds.filter((i) => first[i] === second[i]).length;
  t.diagnostic(`state ${first.length} bytes, ${seeds.length} random bytes, ${kept} kept across the restart`);
  assert.ok(kept >= seeds.length * 0.95, `the restarted TPM kept its state: ${kept} of ${seeds.length} random bytes unchanged`);
  assert.equal(statSync(stateDir).uid, 0);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.deepEqual(leftovers(helper2.jailName, env.stateRoot), [], 'nothing of swtpm either (process, cgroup, lease)');

  await m.delete(name);
  assert.equal(existsSync(stateDir), false, 'the TPM state is removed with the VM');
});
