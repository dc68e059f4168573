import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openManager } from './open.js';
import { repoRoot } from './guest.js';
import { netSkipReason, nsRun } from '../../test/net/netns.js';
import { netnsWorld } from './netns-world.js';
import { leftovers, testEnv, vmName } from './testing.js';

const root = process.getuid?.() === 0;
const BIN = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');

/**
 * `warden start NAME` in a child process that SIGKILLs itself just before `step`; `enter`
 * prefixes the command (nsenter into a test netns; nsenter execs, so the signal is the CLI's).
 */
function startAndDie(stateRoot: string, name: string, step: string, enter: string[] = []): { signal: string | null; stderr: string } {
  const argv = [...enter, process.execPath, BIN, 'start', name, '--state-dir', stateRoot];
  const r = spawnSync(argv[0]!, argv.slice(1), {
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
    const name = vmName(`wdv-die-${step}`);
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

test('a manager killed with a TAP on a bridge in place (in a test netns): reconcile removes the TAP', { skip: root ? netSkipReason() : 'needs root for bridges, TAPs and the jailer', timeout: 300_000 }, async (t) => {
  // The bridge, the TAPs and every warden command live in a netns this test made.
  const w = netnsWorld(t, `wdfi1${process.pid}`, 'warden-netfix-');
  const bridge = 'wdfbr1';
  nsRun(w.ns, ['ip', 'link', 'add', bridge, 'type', 'bridge']);
  for (const step of ['jail', 'cont']) {
    const name = vmName(`wdf-tap-${step}`);
    await openManager({ stateDir: w.env.stateRoot }).create(w.env.specFile({ name, networks: [{ name: 'n0', type: 'bridge', bridge }] }));
    const r = startAndDie(w.env.stateRoot, name, step, ['nsenter', `--net=/run/netns/${w.ns}`, '--']);
    assert.equal(r.signal, 'SIGKILL', r.stderr);
    const taps = tapNames(w.env.stateRoot, name);
    assert.equal(taps.length, 1, 'the plan has one TAP');
    if (step === 'cont') assert.ok(w.links().includes(taps[0]!), 'QEMU holds the TAP until reconcile');
    const rec = (await w.run<Array<{ name: string; phase: string; reason?: string }>>('listVms', {}, 120_000)).find((v) => v.name === name);
    assert.equal(rec?.reason, 'interrupted', JSON.stringify(rec));
    assert.deepEqual(leftovers(name, w.env.stateRoot), [], `nothing left after dying before ${step}`);
    assert.deepEqual(w.links().filter((l) => taps.includes(l)), [], `no TAP left after dying before ${step}`);
  }
});

test('two starts of one VM at once: exactly one wins, the other is refused and changes nothing', { timeout: 60_000 }, async (t) => {
  if (!root) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const name = vmName('wdv-race');
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
