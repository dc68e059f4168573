/** The lease store: uid allocation, refusal of live holders, stale reclaim, the lock under real concurrency, corrupt state. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LeaseStore, JailError, type JailRecord } from '../../src/jail/index.js';
import { isRoot, tempConfig } from './helpers.js';

const FIRST = 231152; // this file's slice: 231152-231167
const req = (name: string, fixed?: { uid: number; gid: number }) => ({ name, cgroupName: name, cgroupLeaves: [], statusFile: '/nonexistent', ...(fixed ? { fixed } : {}) });
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

test('leases take the lowest free uid, refuse live names and uids, and free on release', async (t) => {
  const config = tempConfig(t, FIRST, 3);
  const store = new LeaseStore(config, async () => true);
  const a = await store.acquire(req('a'));
  const b = await store.acquire(req('b'));
  assert.deepEqual([a.uid, a.gid, a.leased, b.uid], [FIRST, FIRST, true, FIRST + 1]);
  await assert.rejects(store.acquire(req('a')), (e: JailError) => e.code === 'JAIL_BUSY');
  await assert.rejects(store.acquire(req('c', { uid: FIRST + 1, gid: FIRST + 1 })), (e: JailError) => e.code === 'JAIL_BUSY' && /held by another live jail/.test(e.message));
  await assert.rejects(store.acquire({ ...req('c'), cgroupName: 'b' }), (e: JailError) => e.code === 'JAIL_BUSY' && /belongs to live jail "b"/.test(e.message));
  const c = await store.acquire(req('c'));
  assert.equal(c.uid, FIRST + 2);
  await assert.rejects(store.acquire(req('d')), (e: JailError) => e.code === 'JAIL_NO_FREE_UID');
  await store.release('a');
  await store.release('a');
  assert.equal((await store.acquire(req('d'))).uid, FIRST, 'the released uid is reused');
  assert.deepEqual((await store.list()).map((r) => r.name).sort(), ['b', 'c', 'd']);
  assert.deepEqual(readdirSync(config.stateDir).sort(), ['leases.json'], 'no temporary or lock files remain');
});

test('a lease whose processes are gone frees its uid and name; its record stays for teardown', async (t) => {
  const config = tempConfig(t, FIRST, 4);
  const store = new LeaseStore(config); // the real liveness probe: /proc and cgroup.procs
  const held = await store.acquire(req('held'));
  const crashed = await store.acquire(req('crashed'));
  assert.equal(held.holder.pid, process.pid);
  await store.update('crashed', { holder: { pid: deadPid(), start: '1' }, program: { pid: deadPid(), start: '1' } });
  const next = await store.acquire(req('next'));
  assert.equal(next.uid, crashed.uid, 'the crashed jail\'s uid was reclaimed');
  assert.equal((await store.get('crashed'))?.uid, crashed.uid, 'its record remains until teardown reads it');
  await assert.rejects(store.acquire(req('held')), (e: JailError) => e.code === 'JAIL_BUSY', 'a live holder keeps its lease');
  // A reused pid with another start time is not mistaken for the holder.
  await store.update('held', { holder: { pid: process.pid, start: '0' } });
  assert.equal((await store.acquire(req('held'))).uid, held.uid, 'the name is launched again over its stale record');
  await store.release('crashed');
  assert.deepEqual((await store.list()).map((r) => r.name).sort(), ['held', 'next']);
});

test('concurrent managers never receive the same uid', async (t) => {
  const config = tempConfig(t, FIRST, 16);
  const worker = join(fileURLToPath(new URL('.', import.meta.url)), 'lease-worker.js');
  const runs = Array.from({ length: 6 }, (_, i) => new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, [worker, config.stateDir, `w${i}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    const timer = setTimeout(() => p.kill('SIGKILL'), 20000);
    p.on('close', (code) => { clearTimeout(timer); code === 0 ? resolve(out.trim()) : reject(new Error(`worker ${i} exited ${code}`)); });
  }));
  const uids = (await Promise.all(runs)).map(Number);
  assert.equal(new Set(uids).size, 6, `distinct: ${uids.join(',')}`);
  const stored = await new LeaseStore(config, async () => true).list();
  assert.deepEqual(stored.map((r: JailRecord) => r.uid).sort(), [...uids].sort());
});

test('a lock left by a dead manager is broken; a corrupt store is reported, not overwritten', async (t) => {
  const config = tempConfig(t, FIRST, 4);
  const store = new LeaseStore(config, async () => true);
  await store.acquire(req('first'));
  writeFileSync(join(config.stateDir, 'leases.lock'), JSON.stringify({ pid: deadPid(), start: '1' }));
  assert.equal((await store.acquire(req('second'))).uid, FIRST + 1);
  writeFileSync(join(config.stateDir, 'leases.json'), '{"version": 1, "jails": ');
  await assert.rejects(store.acquire(req('third')), (e: JailError) => e.code === 'JAIL_STATE_CORRUPT');
  await assert.rejects(store.get('first'), (e: JailError) => e.code === 'JAIL_STATE_CORRUPT');
});

test('pids noted after the record (no lease-file rewrite) are merged by createdAt; torn or foreign ones are ignored; release drops them', async (t) => {
  const config = tempConfig(t, FIRST, 4);
  const store = new LeaseStore(config, async () => true);
  const rec = await store.acquire(req('p'));
  const before = readFileSync(join(config.stateDir, 'leases.json'), 'utf8');
  const pids = { holder: { pid: 11, start: '7' }, monitor: { pid: 11, start: '7' }, program: { pid: 12, start: '8' } };
  store.notePids(rec, pids);
  assert.equal(readFileSync(join(config.stateDir, 'leases.json'), 'utf8'), before, 'the lease file is not rewritten');
  assert.deepEqual({ ...(await store.get('p')) }, { ...rec, ...pids }, 'get merges them');
  assert.deepEqual((await store.list()).find((r) => r.name === 'p')?.program, pids.program, 'list too');
  const file = join(config.runtimeDir, '.pids', 'p.json');
  writeFileSync(file, '{"createdAt": "');
  assert.equal((await store.get('p'))?.program, undefined, 'a torn pids file reads as none');
  store.notePids({ name: 'p', createdAt: '1999-01-01T00:00:00.000Z' }, pids);
  assert.equal((await store.get('p'))?.program, undefined, 'pids of an earlier jail of the name are not this one\'s');
  store.notePids(rec, pids);
  await store.acquire(req('q')); // a locked rewrite of the file by another acquire keeps them (merged, then written)
  assert.deepEqual((await store.get('p'))?.program, pids.program);
  await store.release('p');
  assert.ok(!existsSync(file), 'release drops the pids file');
  assert.deepEqual(readdirSync(join(config.runtimeDir, '.pids')), [], 'no temporary files remain');
});

test('a lease file torn before this boot (a power loss without fsync) is set aside when no jail cgroup holds a process; otherwise it is an error', async (t) => {
  const config = { ...tempConfig(t, FIRST, 4), cgroupParent: `warden-test-torn-${process.pid}` };
  const store = new LeaseStore(config, async () => true);
  await store.acquire(req('old'));
  const file = join(config.stateDir, 'leases.json');
  for (const torn of ['', '{"version": 1, "jails": {"old": {"na']) {
    writeFileSync(file, torn);
    await assert.rejects(store.get('old'), (e: JailError) => e.code === 'JAIL_STATE_CORRUPT', 'torn in this boot: never by the store, so an error');
    utimesSync(file, new Date('2001-01-01'), new Date('2001-01-01')); // written before this boot
    assert.equal(await store.get('old'), undefined, 'read as empty');
    assert.equal((await store.acquire(req('new'))).uid, FIRST, 'the store starts empty');
    const aside = readdirSync(config.stateDir).filter((n) => n.startsWith('leases.json.torn-'));
    assert.equal(aside.length, 1, 'the torn file is kept aside for inspection');
    assert.equal(readFileSync(join(config.stateDir, aside[0]!), 'utf8'), torn);
    rmSync(join(config.stateDir, aside[0]!));
    await store.release('new');
  }
  if (!isRoot()) { t.diagnostic('the live-cgroup case needs root'); return; }
  // A live jail cgroup under the parent: the torn file might name it, so it stays an error.
  const leaf = `/sys/fs/cgroup/pids/${config.cgroupParent}/live`;
  if (!existsSync('/sys/fs/cgroup/pids')) { t.diagnostic('no v1 pids hierarchy here'); return; }
  mkdirSync(leaf, { recursive: true });
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => { sleeper.kill('SIGKILL'); });
  await new Promise((r) => sleeper.once('spawn', r));
  writeFileSync(join(leaf, 'cgroup.procs'), String(sleeper.pid));
  try {
    writeFileSync(file, '');
    utimesSync(file, new Date('2001-01-01'), new Date('2001-01-01'));
    const v1 = { ...config, cgroupVersion: 1 as const };
    await assert.rejects(new LeaseStore(v1, async () => true).acquire(req('x')), (e: JailError) => e.code === 'JAIL_STATE_CORRUPT');
  } finally {
    sleeper.kill('SIGKILL');
    await new Promise((r) => sleeper.once('exit', r));
    for (let i = 0; i < 100; i++) { try { rmdirSync(leaf); break; } catch { await new Promise((r) => setTimeout(r, 10)); } }
    rmdirSync(dirname(leaf));
  }
});
