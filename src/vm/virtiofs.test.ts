/** Shared folders through virtiofsd in jails of their own: the guest mounts them, reads a host file, a readonly share refuses writes, and a killed virtiofsd leaves nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDMAP_DIR } from '../jail/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { outsideView } from './outside.js';
import { isAlive } from './proc.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';
import { waitGone } from './teardown.js';
import { inspectRecord } from './view.js';

const root = process.getuid?.() === 0;
const skip = !root ? 'needs root: the jailer switches uids and makes idmapped mounts'
  : !existsSync('/usr/lib/qemu/virtiofsd') ? 'virtiofsd is not installed (qemu-system-common)' : false;

/** A 0700 directory holding a share of a second uid (4242, shared writable), a share of root's (shared read-only) and a sibling neither may reveal. */
function fixture(token: string): { dir: string; mine: string; theirs: string; sibling: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'warden-share-'));
  const mine = join(dir, 'mine');
  const theirs = join(dir, 'theirs');
  const sibling = join(dir, 'sibling');
  for (const d of [mine, theirs, sibling]) mkdirSync(d, { mode: 0o700 });
  writeFileSync(join(mine, 'hello.txt'), `${token}-mine\n`, { mode: 0o600 });
  writeFileSync(join(mine, 'big.bin'), randomBytes(4 << 20), { mode: 0o600 }); // the guest's md5sum of it checks the data path
  writeFileSync(join(theirs, 'hello.txt'), `${token}-theirs\n`, { mode: 0o600 });
  writeFileSync(join(sibling, 'secret.txt'), 'sibling secret\n');
  // A second uid's private directory: only the idmapping lets virtiofsd (another uid) in, and what the guest writes is that uid's.
  chownSync(join(mine, 'hello.txt'), 4242, 4242);
  chownSync(join(mine, 'big.bin'), 4242, 4242);
  chownSync(mine, 4242, 4242);
  chmodSync(mine, 0o700);
  return { dir, mine, theirs, sibling, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The spec file testEnv writes, with shares added. */
function withShares(file: string, shares: unknown[]): string {
  const spec = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify({ ...spec, shares }, null, 2));
  return file;
}

function parentOf(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
}

function mountsOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/mountinfo`, 'utf8').trim().split('\n');
}

test('shares: the guest mounts two virtiofs shares (rw of a second uid, ro of root), reads host files, cannot write the ro one; virtiofsd runs jailed; kill -9 then stop leaves nothing', { skip, timeout: 240_000 }, async (t) => {
  const token = `warden-share-${process.pid}`;
  const fx = fixture(token);
  const env = testEnv('warden-vfs-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-vfs');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); fx.cleanup(); });
  await m.create(withShares(env.specFile({ name, cmdline: 'warden.virtiofs=mine,theirs' }),
    [{ name: 'mine', path: fx.mine }, { name: 'theirs', path: fx.theirs, readonly: true }]));
  await m.start(name);
  const serial = m.store.paths(name).serialLog;
  await waitForText(serial, GUEST_READY_LINE, 60_000);
  await waitForText(serial, 'WARDEN-VIRTIOFS-WRITE-FAIL theirs', 60_000);
  const out = readFileSync(serial, 'utf8');
  assert.match(out, new RegExp(`WARDEN-VIRTIOFS-CAT mine ${token}-mine`), 'the guest reads a file the host wrote');
  assert.match(out, new RegExp(`WARDEN-VIRTIOFS-CAT theirs ${token}-theirs`), 'and one in root\'s 0700 directory');
  assert.match(out, /WARDEN-VIRTIOFS-LS mine big\.bin hello\.txt \r?\n/, 'the share holds only its own files');
  const md5 = createHash('md5').update(readFileSync(join(fx.mine, 'big.bin'))).digest('hex');
  assert.match(out, new RegExp(`WARDEN-VIRTIOFS-SUM mine ${md5}`), '4 MiB read through the share arrive intact');
  assert.match(out, /WARDEN-VIRTIOFS-WRITE-OK mine/);
  assert.match(out, /WARDEN-VIRTIOFS-WRITE-FAIL theirs/, 'a readonly share refuses the guest\'s writes');
  const written = statSync(join(fx.mine, 'from-guest.txt'));
  assert.equal(readFileSync(join(fx.mine, 'from-guest.txt'), 'utf8'), 'from-guest\n');
  assert.deepEqual([written.uid, written.gid], [4242, 4242], 'a file the guest creates belongs to the directory\'s owner on the host (idmapped back)');
  assert.ok(!existsSync(join(fx.theirs, 'from-guest.txt')));

  const rec = await m.reconcile(name, true);
  const helpers = (rec.helpers ?? []).filter((h) => h.kind === 'virtiofsd');
  assert.equal(helpers.length, 2, 'one virtiofsd per share, in the record');
  const qemu = await outsideView(m.fs, rec.run!.qemu.pid);
  assert.ok(qemu !== null);
  const uids = new Set<number>([qemu.uid]);
  for (const h of helpers) {
    const v = await outsideView(m.fs, h.proc.pid);
    assert.ok(v !== null, `${h.jailName} runs`);
    assert.notEqual(v.uid, 0);
    assert.ok(!uids.has(v.uid), `${h.jailName} has a uid of its own (${v.uid})`);
    uids.add(v.uid);
    assert.equal(v.uid, h.uid);
    assert.ok(v.ownNamespaces.includes('mnt'), 'own mount namespace');
    assert.ok(v.ownNamespaces.includes('user') && v.ownNamespaces.includes('net'), 'own user and (empty) network namespaces');
    const status = readFileSync(`/proc/${h.proc.pid}/status`, 'utf8');
    const parent = parentOf(h.proc.pid); // bwrap, pid 1 of the jail: the jail's view, outside virtiofsd's user namespace
    const parentStatus = readFileSync(`/proc/${parent}/status`, 'utf8');
    assert.match(parentStatus, /CapEff:\s+0000000000000000/, 'no capabilities outside virtiofsd\'s own user namespace (its jail\'s parent process)');
    assert.match(status, /NoNewPrivs:\s+1/);
    // Its view: the binary, libraries and the one directory; nothing of the sibling or the parent directory.
    const mounts = mountsOf(parent);
    assert.ok(!mounts.some((l) => l.includes(fx.sibling) || l.split(' ')[3] === fx.dir), `no sibling in ${h.jailName}'s mounts`);
    assert.ok(mounts.length < 40, `a small view: ${mounts.length} mounts`);
    const share = mounts.find((l) => l.split(' ')[4] === '/share');
    assert.ok(share !== undefined && share.includes('idmapped'), 'the share is an idmapped mount');
    if (h.from === 'shares[1]') assert.match(share.split(' ')[5]!, /^ro\b/, 'readonly at the helper too');
    assert.ok(readdirSync(`/proc/${h.proc.pid}/root`).includes('hello.txt'), 'virtiofsd is chrooted into the share');
  }
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { argv: string[]; manifest: Array<{ kind: string; resource: string }> };
  assert.ok(plan.argv.some((a) => a.includes('memory-backend-memfd') && a.includes('"share":true')), 'guest memory is a shared memfd');
  for (const h of helpers) assert.ok(plan.manifest.some((e) => e.kind === 'helper' && e.resource === h.jailName));
  const shown = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.equal(shown.helpers.filter((h) => h.kind === 'virtiofsd' && h.alive).length, 2, 'inspect shows both');

  const victim = helpers[0]!;
  process.kill(victim.proc.pid, 'SIGKILL');
  assert.ok(await waitGone(m.fs, victim.proc, 5000));
  const after = await inspectRecord(m.fs, m.store, await m.reconcile(name));
  assert.ok(after.helpers.some((h) => h.jailName === victim.jailName && !h.alive), 'a dead virtiofsd is reported with the VM');
  // The guest's own shutdown waits on the dead share (FUSE requests never time out): a short ACPI wait, then QEMU quits.
  await m.stop(name, { timeoutS: 3 });
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  for (const h of helpers) {
    assert.deepEqual(leftovers(h.jailName, env.stateRoot), [], `nothing of ${h.jailName}`);
    assert.ok(!(await isAlive(m.fs, h.proc)));
    assert.ok(!existsSync(join(IDMAP_DIR, h.jailName)), 'its idmapped mount point is gone');
  }
  assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(fx.dir), 'no mount of the shares is left on the host');
});
