/** A daemon VM's owner is checked by the start's own confined walk (facts step): a writable disk its owner cannot open is refused there. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { exitCodeFor, type WardenError } from '../errors/index.js';
import { DaemonService } from './daemon.js';
import { leftovers, testEnv, vmName } from './testing.js';

test('a VM owned by a second uid whose writable disk that uid cannot open is refused at start with IMAGE_OWNER_DENIED (exit 3), and nothing is left', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: useradd and a daemon acting for another uid');
  const user = `wfo${process.pid}`;
  // Made here, removed after (also on failure); -r -M -N: a system account, no home, no subuids, no group of its own.
  t.after(() => { spawnSync('userdel', ['-f', user]); });
  const add = spawnSync('useradd', ['-r', '-M', '-N', '-g', '65534', '-s', '/usr/sbin/nologin', user], { encoding: 'utf8' });
  if (add.status !== 0) throw new Error(`useradd ${user}: ${add.stderr}`);
  const uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
  assert.ok(uid > 0, `uid of ${user}`);

  // The disk is root's, 0644, in a 0700 temp dir: the second uid can open it neither for writing nor at all.
  const env = testEnv('warden-owner-check-');
  const svc = await DaemonService.open({ stateDir: env.stateRoot, socket: `${env.dir}/none.sock` });
  const name = vmName('wdo');
  t.after(async () => {
    await svc.kill(name).catch(() => undefined);
    await svc.close().catch(() => undefined);
    env.cleanup();
  });
  const created = await svc.create({ file: env.specFile({ name }) }, { owner: uid });
  assert.equal(created.owner, uid);
  await assert.rejects(svc.start(name), (e: WardenError) => {
    assert.equal(e.code, 'IMAGE_OWNER_DENIED', e.message);
    assert.equal(exitCodeFor(e), 3);
    assert.match(e.message, new RegExp(`for a VM of uid ${uid}`));
    return true;
  });
  assert.notEqual((await svc.get(name)).phase, 'running');
  assert.deepEqual(leftovers(name, env.stateRoot), [], 'nothing left: no process, cgroup, lease or socket');
});
