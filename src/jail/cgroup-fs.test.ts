import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeFs, nodeClock } from '../sys/index.js';
import { planCgroup } from './cgroup-plan.js';
import { cgroupPids, createCgroup, detectCgroupLayout, independentRuns, killCgroup, removeCgroup, removeEmptyParents } from './cgroup-fs.js';
import { JailError } from './errors.js';

/** A fake v1 tree under a temp root: the Fs port prefixes every path, so the code runs unchanged. */
function fakeTree(t: import('node:test').TestContext): { root: string; fs: NodeFs } {
  const root = mkdtempSync(join(tmpdir(), 'warden-jail-cgfs-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'proc/self'), { recursive: true });
  writeFileSync(join(root, 'proc/self/mounts'), 'cgroup /cg/memory cgroup rw,memory 0 0\ncgroup /cg/pids cgroup rw,pids 0 0\ncgroup2 /cg/unified cgroup2 rw 0 0\n');
  for (const d of ['cg/memory', 'cg/pids', 'cg/unified']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'cg/unified/cgroup.controllers'), '\n');
  return { root, fs: new NodeFs(root) };
}

test('detect, create with limits, list, remove: against a fake tree through the Fs port', async (t) => {
  const { root, fs } = fakeTree(t);
  const layout = await detectCgroupLayout(fs, '/proc/self/mounts');
  assert.deepEqual(layout, { version: 1, mounts: { memory: '/cg/memory', pids: '/cg/pids' } });
  const plan = planCgroup(layout, 'warden', { name: 'j1', memoryBytes: 1 << 24, pids: 9 }, []);
  await createCgroup(fs, plan);
  assert.equal(readFileSync(join(root, 'cg/memory/warden/j1/memory.limit_in_bytes'), 'utf8'), String(1 << 24));
  assert.ok(!existsSync(join(root, 'cg/memory/warden/j1/memory.memsw.limit_in_bytes')), 'optional file skipped when absent');
  assert.equal(readFileSync(join(root, 'cg/pids/warden/j1/pids.max'), 'utf8'), '9');
  writeFileSync(join(root, 'cg/pids/warden/j1/cgroup.procs'), '101\n102\n');
  writeFileSync(join(root, 'cg/memory/warden/j1/cgroup.procs'), '102\n');
  assert.deepEqual((await cgroupPids(fs, plan.leaves)).sort(), [101, 102]);
  // A second create of the same leaf is JAIL_BUSY, and does not touch the first.
  await assert.rejects(createCgroup(fs, plan), (e: JailError) => e.code === 'JAIL_BUSY');
  assert.ok(existsSync(join(root, 'cg/pids/warden/j1/pids.max')));
  // rmdir of a real cgroup succeeds with control files present; a temp dir needs them gone first.
  for (const leaf of plan.leaves) rmSync(join(root, leaf), { recursive: true });
  mkdirSync(join(root, plan.leaves[0]!));
  await removeCgroup(fs, plan.leaves, nodeClock);
  assert.ok(plan.leaves.every((l) => !existsSync(join(root, l))), 'removed, and missing leaves are fine');
  assert.ok(existsSync(join(root, 'cg/memory/warden')), 'the shared parent stays');
});

test('a failed limit write removes the leaves already created and names the file', async (t) => {
  const { root, fs } = fakeTree(t);
  const plan = {
    version: 1 as const, leaves: ['/cg/memory/warden/j2', '/cg/pids/warden/j2'],
    steps: [
      { op: 'mkdir' as const, path: '/cg/memory/warden', parents: true }, { op: 'mkdir' as const, path: '/cg/memory/warden/j2', parents: false },
      { op: 'mkdir' as const, path: '/cg/pids/warden', parents: true }, { op: 'mkdir' as const, path: '/cg/pids/warden/j2', parents: false },
      { op: 'write' as const, path: '/cg/pids/warden/missing/pids.max', value: '9' },
    ],
  };
  await assert.rejects(createCgroup(fs, plan), (e: JailError) => {
    assert.equal(e.code, 'JAIL_CGROUP_WRITE');
    assert.match(e.message, /"9" to \/cg\/pids\/warden\/missing\/pids\.max/);
    return true;
  });
  for (const leaf of plan.leaves) assert.ok(!existsSync(join(root, leaf)), `${leaf} rolled back`);
});

test('killCgroup signals every listed pid until the leaves are empty, and gives up with JAIL_TEARDOWN_FAILED', async (t) => {
  const { root, fs } = fakeTree(t);
  const leaf = '/cg/pids/warden/j3';
  mkdirSync(join(root, leaf), { recursive: true });
  writeFileSync(join(root, leaf, 'cgroup.procs'), '7\n8\n');
  const sent: Array<[number, string]> = [];
  await killCgroup(fs, [leaf], (pid, sig) => {
    sent.push([pid, sig]);
    if (pid === 8) writeFileSync(join(root, leaf, 'cgroup.procs'), '');
  }, nodeClock);
  assert.deepEqual(sent, [[7, 'SIGKILL'], [8, 'SIGKILL']]);
  writeFileSync(join(root, leaf, 'cgroup.procs'), '9\n');
  await assert.rejects(killCgroup(fs, [leaf], () => undefined, nodeClock, 30), (e: JailError) => e.code === 'JAIL_TEARDOWN_FAILED');
});

test('no usable hierarchy is a JAIL_CGROUP_SETUP error naming the mount table', async (t) => {
  const { root, fs } = fakeTree(t);
  writeFileSync(join(root, 'proc/self/mounts'), 'proc /proc proc rw 0 0\n');
  await assert.rejects(detectCgroupLayout(fs, '/proc/self/mounts'), (e: JailError) => e.code === 'JAIL_CGROUP_SETUP' && /\/proc\/self\/mounts/.test(e.message));
});

test('the parent cgroup goes with its last jail, stays while another jail is in it, and comes back on demand', async (t) => {
  const { root, fs } = fakeTree(t);
  const layout = await detectCgroupLayout(fs, '/proc/self/mounts');
  const a = planCgroup(layout, 'warden', { name: 'a' }, []);
  const b = planCgroup(layout, 'warden', { name: 'b' }, []);
  mkdirSync(join(root, a.leaves[0]!), { recursive: true });
  mkdirSync(join(root, b.leaves[0]!), { recursive: true });
  rmSync(join(root, a.leaves[0]!), { recursive: true });
  await removeEmptyParents(fs, a.leaves);
  assert.ok(existsSync(join(root, 'cg/memory/warden')), 'jail b still lives under the parent');
  rmSync(join(root, b.leaves[0]!), { recursive: true });
  await removeEmptyParents(fs, b.leaves);
  assert.ok(!existsSync(join(root, 'cg/memory/warden')), 'the last jail took the parent with it');
  // A launch whose parent vanished between its two mkdirs makes it again.
  const c = planCgroup(layout, 'warden', { name: 'c', pids: 5 }, []);
  const mkdirParentsThenVanish: typeof fs.mkdir = async (path, options) => {
    await NodeFs.prototype.mkdir.call(fs, path, options);
    if (options?.recursive === true && path.endsWith('/warden') && !vanished) { vanished = true; rmSync(join(root, path), { recursive: true }); }
  };
  let vanished = false;
  await createCgroup(Object.assign(Object.create(fs) as NodeFs, { mkdir: mkdirParentsThenVanish }), c);
  assert.ok(vanished, 'the parent really vanished in between');
  assert.equal(readFileSync(join(root, 'cg/pids/warden/c/pids.max'), 'utf8'), '5');
});

test('independentRuns: one run per v1 hierarchy (parent, leaf, its limits, in order), a single run on v2', () => {
  const v1 = planCgroup({ version: 1, mounts: { cpu: '/cg/cpu', memory: '/cg/memory', pids: '/cg/pids' } }, 'warden', { name: 'j', memoryBytes: 1 << 24, pids: 9, cpu: { quotaUs: 1, periodUs: 2 } }, []);
  const runs = independentRuns(v1.steps);
  assert.deepEqual(runs.map((r) => r[1]?.path), ['/cg/cpu/warden/j', '/cg/memory/warden/j', '/cg/pids/warden/j']);
  assert.deepEqual(runs.flat(), v1.steps, 'every step once, in the plan\'s order within each run');
  for (const run of runs) {
    const leaf = run[1]!.path;
    assert.ok(run.slice(2).every((s) => s.path.startsWith(`${leaf}/`)), 'a run writes only below its own leaf');
  }
  const v2 = planCgroup({ version: 2, mount: '/cg', controllers: ['cpu', 'memory', 'pids'] }, 'warden', { name: 'j', pids: 9 }, []);
  assert.deepEqual(independentRuns(v2.steps), [v2.steps], 'v2 enables controllers from the root down: one ordered run');
});
