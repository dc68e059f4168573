/** The lease host check's batched NSS lookups (issue 18 follow-up): windows of candidates answer exactly as one getent per id would. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { hostIdProbe } from '../../src/jail/index.js';

const getent = (db: string, id: number): string | null => {
  const r = spawnSync('getent', [db, String(id)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(':')[0]! : null;
};

test('ids 0-99 across several NSS windows: every host account and group is named as getent names it, the rest are not called accounts', async () => {
  // One probe for all, as one acquire uses it: windows of 8, 16, 32, 64 ids.
  const probe = hostIdProbe({ stateDirs: [] });
  for (let id = 0; id < 100; id++) {
    const why = await probe(id);
    const user = getent('passwd', id);
    const group = getent('group', id);
    if (user !== null) assert.equal(why, `uid ${id} is the host account "${user}" (NSS passwd)`);
    else if (group !== null) assert.equal(why, `gid ${id} is the host group "${group}" (NSS group)`);
    else assert.ok(why === null || !/NSS/.test(why), `${id}: ${why}`);
  }
});

test('the probe\'s own uid is taken and a far-off id is free: a new window opens for an id outside the last', async () => {
  // This process's own uid is an account (or at least a live process); an id far off is nobody's.
  const probe = hostIdProbe({ stateDirs: [] });
  assert.match((await probe(process.getuid!()))!, /host account|live process/);
  assert.equal(await probe(4_000_000_000), null);
});
