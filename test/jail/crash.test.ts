/** A manager that dies at any launch step leaves a state teardownJail fully reconciles; before the go, the program never runs; after it, teardown kills it by cgroup. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeaseStore, teardownJail, type JailerConfig, type JailSpec } from '../../src/jail/index.js';
import { isRoot, jailName, probeSpec, tempConfig } from './helpers.js';

const FIRST = 231128; // this file's slice: 231128-231135
const launcher = join(fileURLToPath(new URL('.', import.meta.url)), 'crash-launcher.js');

/** A probe jail that leaves /out/marker (a 0777 directory on the host) when its program runs. */
function markerJail(config: JailerConfig, name: string): { out: string; spec: JailSpec } {
  const out = join(config.stateDir, '..', 'out');
  mkdirSync(out);
  chmodSync(join(config.stateDir, '..'), 0o755);
  chmodSync(out, 0o777);
  const spec = probeSpec(name, 'echo ran > /out/marker; exec sleep 30', {
    mounts: [...probeSpec('x', '').mounts, { type: 'bind', source: out, target: '/out' }],
  });
  return { out, spec };
}

for (const step of ['leased', 'cgroup', 'started'] as const) {
  test(`manager crash after "${step}": teardown removes everything; the program never ran`, async (t) => {
    if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
    const config = tempConfig(t, FIRST, 8);
    const name = jailName(`crash-${step}`);
    t.after(() => teardownJail(name, config));
    const { out, spec } = markerJail(config, name);
    const r = crashAt(config, spec, step);
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

/** A crash right after the go, before the program's pids are recorded: the record has no pids, yet teardown finds the program through the cgroup and kills it. */
test('manager crash after "going" (pids not recorded yet): teardown kills the running program and removes everything', async (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST + 4, 4);
  const name = jailName('crash-going');
  t.after(() => teardownJail(name, config));
  const { out, spec } = markerJail(config, name);
  const r = crashAt(config, spec, 'going');
  assert.equal(r.status, 9, r.stderr);
  const record = await new LeaseStore(config).get(name);
  assert.ok(record !== undefined, 'the record was written before anything else');
  assert.equal(record.program, undefined, 'the crash came before the pids were recorded');
  const deadline = Date.now() + 10000;
  while (!existsSync(join(out, 'marker')) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(existsSync(join(out, 'marker')), 'the go was sent: the program ran');
  const procs = record.cgroupLeaves.flatMap((l) => readFileSync(join(l, 'cgroup.procs'), 'utf8').split('\n').filter((x) => x !== '').map(Number));
  assert.ok(procs.length > 0, 'the running program is in its cgroup');
  const res = await teardownJail(name, config);
  assert.equal(res.found, true);
  for (const pid of procs) assert.ok(res.killed.includes(pid), `pid ${pid} killed`);
  for (const pid of procs) assert.ok(!existsSync(`/proc/${pid}/stat`) || readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] === 'Z', `pid ${pid} gone`);
  for (const leaf of record.cgroupLeaves) assert.ok(!existsSync(leaf), `${leaf} removed`);
  assert.equal(JSON.parse(readFileSync(join(config.stateDir, 'leases.json'), 'utf8')).jails[name], undefined);
});

function crashAt(config: JailerConfig, spec: JailSpec, step: string): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [launcher, JSON.stringify(config), JSON.stringify(spec), step], { encoding: 'utf8', timeout: 20000 });
}
