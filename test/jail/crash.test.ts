/** A manager that dies at any launch step leaves a state teardownJail fully reconciles; before the go, the program never runs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeaseStore, teardownJail } from '../../src/jail/index.js';
import { isRoot, jailName, probeSpec, tempConfig } from './helpers.js';

const FIRST = 231128; // this file's slice: 231128-231135
const launcher = join(fileURLToPath(new URL('.', import.meta.url)), 'crash-launcher.js');

for (const step of ['leased', 'cgroup', 'started'] as const) {
  test(`manager crash after "${step}": teardown removes everything; the program never ran`, async (t) => {
    if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
    const config = tempConfig(t, FIRST, 8);
    const name = jailName(`crash-${step}`);
    t.after(() => teardownJail(name, config));
    const out = join(config.stateDir, '..', 'out');
    mkdirSync(out);
    chmodSync(join(config.stateDir, '..'), 0o755);
    chmodSync(out, 0o777);
    const spec = probeSpec(name, 'echo ran > /out/marker; exec sleep 30', {
      mounts: [...probeSpec('x', '').mounts, { type: 'bind', source: out, target: '/out' }],
    });
    const r = spawnSync(process.execPath, [launcher, JSON.stringify(config), JSON.stringify(spec), step], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 9, r.stderr);
    const record = await new LeaseStore(config).get(name);
    assert.ok(record !== undefined, 'the record was written before anything else');
    // Without the go, the helper sees the gate close and exits; give it a moment to prove it does not run the program.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(!existsSync(join(out, 'marker')), 'the program never started');
    const res = await teardownJail(name, config);
    assert.equal(res.found, true);
    for (const leaf of record.cgroupLeaves) assert.ok(!existsSync(leaf), `${leaf} removed`);
    assert.equal(JSON.parse(readFileSync(join(config.stateDir, 'leases.json'), 'utf8')).jails[name], undefined);
    assert.equal((await teardownJail(name, config)).found, false);
  });
}
