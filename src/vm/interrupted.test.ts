import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openManager } from './open.js';
import { repoRoot } from './guest.js';
import { leftovers, testEnv } from './testing.js';

const root = process.getuid?.() === 0;
const BIN = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');

/** `warden start NAME` in a child process that SIGKILLs itself just before `step`. */
function startAndDie(stateRoot: string, name: string, step: string): { signal: string | null; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'start', name, '--state-dir', stateRoot], {
    env: { ...process.env, WARDEN_TEST_DIE_BEFORE: step }, encoding: 'utf8', timeout: 60_000,
  });
  return { signal: r.signal, stderr: r.stderr };
}

function tapNames(stateRoot: string, name: string): string[] {
  try {
    const plan = JSON.parse(readFileSync(join(stateRoot, 'vms', name, 'plan.json'), 'utf8')) as { hostActions: Array<{ kind: string; ifname?: string }> };
    return plan.hostActions.flatMap((a) => (a.kind === 'tap' && a.ifname ? [a.ifname] : []));
  } catch {
    return [];
  }
}

test('the manager killed before each start step: the next command reconciles and nothing is left', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  for (const step of ['claim', 'network', 'open', 'jail', 'qmp', 'cont']) {
    const name = `wdv-die-${step}`;
    await m.create(env.specFile({ name }));
    const r = startAndDie(env.stateRoot, name, step);
    assert.equal(r.signal, 'SIGKILL', `the manager died before ${step}: ${r.stderr}`);
    if (step === 'qmp' || step === 'cont') {
      assert.notDeepEqual(leftovers(name, env.stateRoot), [], `before reconcile QEMU is still there (died before ${step})`);
    }
    const rec = await m.reconcile(name);
    assert.ok(rec.phase === 'stopped' || rec.phase === 'created', `${step}: phase ${rec.phase}`);
    if (step !== 'claim') assert.equal(rec.lastExit?.reason, 'interrupted', `${step}: ${JSON.stringify(rec.lastExit)}`);
    assert.deepEqual(leftovers(name, env.stateRoot), [], `nothing left after dying before ${step}`);
    assert.equal(rec.run, undefined);
    assert.equal(rec.undo, undefined);
    // And the VM starts normally afterwards.
    assert.equal((await m.start(name)).record.phase, 'running');
    await m.kill(name);
    assert.deepEqual(leftovers(name, env.stateRoot), []);
  }
});

test('a manager killed with a TAP on a bridge in place: reconcile removes the TAP', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip('needs root for bridges, TAPs and the jailer');
  const bridge = `wdvbr${process.pid % 10000}`;
  const add = spawnSync('ip', ['link', 'add', bridge, 'type', 'bridge'], { encoding: 'utf8' });
  if (add.status !== 0) return t.skip(`cannot create a bridge here: ${add.stderr.trim()}`);
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => {
    for (const n of await m.store.list()) await m.kill(n).catch(() => undefined);
    spawnSync('ip', ['link', 'delete', bridge]);
    env.cleanup();
  });
  for (const step of ['jail', 'cont']) {
    const name = `wdv-tap-${step}`;
    await m.create(env.specFile({ name, networks: [{ name: 'n0', type: 'bridge', bridge }] }));
    const r = startAndDie(env.stateRoot, name, step);
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const taps = tapNames(env.stateRoot, name);
    assert.equal(taps.length, 1, 'the plan has one TAP');
    if (step === 'cont') assert.ok(leftovers(name, env.stateRoot, taps).some((l) => l.startsWith('link:')), 'QEMU holds the TAP until reconcile');
    const rec = await m.reconcile(name);
    assert.equal(rec.lastExit?.reason, 'interrupted');
    assert.deepEqual(leftovers(name, env.stateRoot, taps), [], `nothing left after dying before ${step}`);
  }
});

test('two starts of one VM at once: exactly one wins, the other is refused and changes nothing', { timeout: 60_000 }, async (t) => {
  if (!root) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const name = 'wdv-race';
  await m.create(env.specFile({ name }));
  const start = (): Promise<{ code: number | null; out: string }> => new Promise((resolve) => {
    const c = spawn(process.execPath, [BIN, 'start', name, '--state-dir', env.stateRoot, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    c.on('exit', (code) => resolve({ code, out }));
  });
  const results = await Promise.all([start(), start()]);
  const won = results.filter((r) => r.code === 0);
  const lost = results.filter((r) => r.code !== 0);
  assert.equal(won.length, 1, JSON.stringify(results));
  assert.match(lost[0]!.out, /"code": "(VM_BUSY|VM_INVALID_STATE)"/);
  const rec = await m.reconcile(name, true);
  assert.equal(rec.phase, 'running');
  await m.kill(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
