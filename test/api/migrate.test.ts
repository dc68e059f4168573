/**
 * Live migration between two wardend daemons, each in a network namespace of its own standing in
 * for a host (a veth pair between them, the stream over TCP), with storage shared: a cancel and a
 * target killed midway leave the VM running on the source and nothing on the target; then the VM
 * moves and its tick counter goes on at the target with no new boot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type Io } from '../../src/cli/index.js';
import { GUEST_READY_LINE, repoRoot, testEnv, waitForText } from '../../src/vm/index.js';
import { leftovers, vmName } from '../../src/vm/testing.js';
import { createNetns, netSkipReason, nsRun } from '../net/netns.js';
import { http, removeDir, socketDir } from './helpers.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

interface Daemon { proc: ChildProcess; stop(): Promise<void>; kill(): Promise<void> }

/** `warden daemon` inside netns `ns` only (nsenter --net: the jailer needs the host's /sys cgroup mounts). */
async function daemonIn(ns: string, socket: string, stateDir: string, env: NodeJS.ProcessEnv = process.env): Promise<Daemon> {
  const bin = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
  const proc = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', process.execPath, bin, 'daemon', '--socket', socket, '--state-dir', stateDir], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => { err += c.toString(); if (process.env['MIG_DEBUG']) process.stderr.write(c); });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 30 s: ${err}`)), 30_000);
    proc.stderr!.on('data', () => { if (err.includes('serving ')) { clearTimeout(timer); resolve(); } });
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the daemon exited (${code}): ${err}`)); });
  });
  const end = async (sig: NodeJS.Signals): Promise<void> => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise((r) => proc.once('exit', r));
    proc.kill(sig);
    await gone;
  };
  return { proc, stop: () => end('SIGTERM'), kill: () => end('SIGKILL') };
}

const ticks = (log: string): number[] => [...readFileSync(log, 'latin1').matchAll(/WARDEN-TICK (\d+)/g)].map((m) => Number(m[1]));

async function until<T>(what: string, fn: () => Promise<T | null | undefined> | T | null | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('warden migrate between two daemons in two netns: cancel and a killed target leave the source running, then the VM moves and ticks on', { skip: netSkipReason(), timeout: 420_000 }, async (t) => {
  const env = testEnv('warden-migrate-');
  const sdir = socketDir();
  const n = process.pid % 200;
  const [nsA, nsB] = [`wdtmga${process.pid}`, `wdtmgb${process.pid}`];
  const [ipA, ipB] = [`10.97.${n}.1`, `10.97.${n}.2`];
  const rootA = join(env.dir, 'host-a');
  const rootB = join(env.dir, 'host-b');
  const [sockA, sockB] = [join(sdir, 'a.sock'), join(sdir, 'b.sock')];
  const name = vmName('wdm-move');
  const daemons: Daemon[] = [];
  t.after(async () => {
    for (const s of [sockA, sockB]) await http(s, 'DELETE', `/v1/vms/${name}?force=1`).catch(() => undefined);
    for (const d of daemons) await d.stop().catch(() => undefined);
    env.cleanup();
    removeDir(sdir);
  });
  createNetns(t, nsA);
  createNetns(t, nsB);
  const vethA = `wdmv${process.pid}a`.slice(-15);
  const vethB = `wdmv${process.pid}b`.slice(-15);
  nsRun(nsA, ['ip', 'link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethB, 'netns', nsB]);
  nsRun(nsA, ['ip', 'addr', 'add', `${ipA}/24`, 'dev', vethA]);
  nsRun(nsA, ['ip', 'link', 'set', vethA, 'up']);
  nsRun(nsB, ['ip', 'addr', 'add', `${ipB}/24`, 'dev', vethB]);
  nsRun(nsB, ['ip', 'link', 'set', vethB, 'up']);
  // Host A's image policy: disk copies it receives may be made only in host-a-images (stage 4).
  const copyDir = join(env.dir, 'host-a-images');
  mkdirSync(copyDir);
  const policyA = join(env.dir, 'policy-a.yaml');
  writeFileSync(policyA, `imageDirs: [${copyDir}]\n`);
  const a = await daemonIn(nsA, sockA, rootA, { ...process.env, WARDEN_POLICY: policyA });
  daemons.push(a);
  let b = await daemonIn(nsB, sockB, rootB);
  daemons.push(b);

  // Data the copy must carry: written into the base the VM's overlay reads through.
  const pattern = spawnSync('qemu-io', ['-f', 'qcow2', '-c', 'write -P 0x5a 1M 4M', env.base], { encoding: 'utf8' });
  assert.equal(pattern.status, 0, pattern.stderr);
  let io = capture();
  const onA = ['--state-dir', rootA];
  assert.equal(await run(['create', env.specFile({ name, cmdline: 'warden.tick=1' }), ...onA], io), 0, io.stderr);
  assert.equal(await run(['start', name, ...onA], io = capture()), 0, io.stderr);
  const logA = join(rootA, 'vms', name, 'serial.log');
  const logB = join(rootB, 'vms', name, 'serial.log');
  await waitForText(logA, 'WARDEN-TICK 2', 120_000);
  const qemuA = (JSON.parse(readFileSync(join(rootA, 'vms', name, 'vm.json'), 'utf8')) as { run: { qemu: { pid: number } } }).run.qemu.pid;
  const recB = (): { run?: { qemu: { pid: number } } } | null => {
    try { return JSON.parse(readFileSync(join(rootB, 'vms', name, 'vm.json'), 'utf8')); } catch { return null; }
  };
  const slow = JSON.stringify({ target: sockB, address: ipB, insecureNetwork: true, maxBandwidth: 4 * 1024 * 1024 });
  const sourceRuns = async (why: string): Promise<void> => {
    const rec = (await http(sockA, 'GET', `/v1/vms/${name}`)).json as { phase: string; run?: { qemu: { pid: number } } };
    assert.equal(rec.phase, 'running', why);
    assert.equal(rec.run?.qemu.pid, qemuA, `${why}: the same QEMU`);
    const last = Math.max(...ticks(logA));
    await waitForText(logA, `WARDEN-TICK ${last + 2}`, 30_000);
  };
  const targetEmpty = async (why: string): Promise<void> => {
    assert.deepEqual((await http(sockB, 'GET', '/v1/vms')).json.vms, [], `${why}: no VM on the target`);
    assert.deepEqual(leftovers(name, rootB), [], `${why}: nothing of it on the target's host`);
  };

  // 0. A stream off loopback without the opt-in (it is not encrypted) is refused by the target before it listens or defines anything.
  assert.equal(await run(['migrate', name, '--to', sockB, '--address', ipB, ...onA], io = capture()), 2, io.stderr + io.stdout);
  assert.match(io.stderr, /VM_MIGRATE_REFUSED[\s\S]*not encrypted|not encrypted[\s\S]*VM_MIGRATE_REFUSED/, io.stderr);
  await sourceRuns('after a refused address');
  await targetEmpty('after a refused address');

  // 1. Cancelled midway (DELETE .../migrate, as warden migrate --cancel): the source runs on.
  const op1 = (await http(sockA, 'POST', `/v1/vms/${name}/migrate`, slow)).json.operation as { id: string };
  await until('the target launched its QEMU', () => recB()?.run, 60_000);
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(await run(['migrate', name, '--cancel', ...onA], io = capture()), 0, io.stderr);
  const done1 = (await http(sockA, 'GET', `/v1/operations/${op1.id}/wait?wait=120`)).json.operation as { status: string; error?: { code: string } };
  assert.deepEqual([done1.status, done1.error?.code], ['failed', 'VM_MIGRATE_CANCELLED'], JSON.stringify(done1));
  await sourceRuns('after a cancel');
  await targetEmpty('after a cancel');

  // 2. The target host dies midway (its daemon and its QEMU SIGKILLed): the source runs on; the
  //    target's daemon, restarted, undoes the half-made VM and removes it.
  const op2 = (await http(sockA, 'POST', `/v1/vms/${name}/migrate`, slow)).json.operation as { id: string };
  const qemuB = (await until('the target launched its QEMU', () => recB()?.run, 60_000)).qemu.pid;
  await new Promise((r) => setTimeout(r, 1000));
  await b.kill();
  try { process.kill(qemuB, 'SIGKILL'); } catch { /* gone with it */ }
  const done2 = (await http(sockA, 'GET', `/v1/operations/${op2.id}/wait?wait=120`)).json.operation as { status: string; error?: { code: string } };
  assert.equal(done2.status, 'failed', JSON.stringify(done2));
  await sourceRuns('after the target died');
  b = await daemonIn(nsB, sockB, rootB);
  daemons.push(b);
  await targetEmpty('after the target daemon restarted');

  // 3. The VM moves (the CLI shows QEMU's progress): it runs on the target, ticking on without a new boot.
  const before = Math.max(...ticks(logA));
  const t0 = Date.now();
  const mb = String(32 * 1024 * 1024);
  assert.equal(await run(['migrate', name, '--to', sockB, '--address', ipB, '--insecure-network', '--bandwidth', mb, ...onA], io = capture()), 0, io.stderr + io.stdout);
  assert.match(io.stdout, new RegExp(`VM ${name} runs on ${sockB} now \\(QEMU: \\d+ ms in all, \\d+ ms downtime`));
  assert.match(io.stderr, /migration active: [\d.]+ MiB sent/, 'progress from query-migrate');
  const moved = (await http(sockB, 'GET', `/v1/vms/${name}`)).json as { phase: string; incomingSince?: string };
  assert.equal(moved.phase, 'running');
  assert.equal(moved.incomingSince, undefined);
  const runB = (await http(sockB, 'GET', `/v1/vms/${name}`)).json as { run: { qemu: { pid: number } } };
  const argv = readFileSync(`/proc/${runB.run.qemu.pid}/cmdline`, 'latin1').split('\0');
  assert.equal(argv[argv.indexOf('-incoming') + 1], 'defer', 'the target QEMU waited for a stream passed as an fd');
  assert.equal(argv.some((x) => /tcp:|10\.97\./.test(x)), false, 'QEMU was given no address to listen on or connect to');
  assert.equal((await http(sockA, 'GET', `/v1/vms/${name}`)).status, 404, 'the source has no VM left');
  assert.deepEqual(leftovers(name, rootA), [], 'nor anything of it on the source host');
  const took = Math.ceil((Date.now() - t0) / 1000);
  await waitForText(logB, 'WARDEN-TICK', 30_000);
  const first = Math.min(...ticks(logB));
  // The source's log went with its VM: the counter seen before the move, plus the seconds it took, bound the target's first tick.
  assert.ok(first > before && first <= before + took + 2, `the target's first tick (${first}) follows the source's last seen (${before}, ${took} s before)`);
  const after = await waitForText(logB, `WARDEN-TICK ${first + 2}`, 30_000);
  assert.equal(after.includes(GUEST_READY_LINE), false, 'no boot on the target');
  assert.equal(/Linux version/.test(after), false, 'no kernel banner on the target');
  assert.equal(existsSync(join(rootA, 'vms', name)), false);

  // 4. Back to the first host with storage not shared: host A makes its own copy of the disk (the
  //    path map says where), the source mirrors it over NBD, then the RAM moves; the guest ticks on.
  const copy = join(copyDir, 'disk.qcow2');
  //    A map target outside host A's imageDirs is refused by A before anything is made; the VM stays on B.
  const elsewhere = join(env.dir, 'host-a-elsewhere');
  mkdirSync(elsewhere);
  assert.equal(await run(['migrate', name, '--to', sockA, '--address', ipA, '--insecure-network', '--map-path', `${env.dir}=${elsewhere}`, '--state-dir', rootB], io = capture()), 2, io.stderr + io.stdout);
  assert.match(io.stderr, /VM_MIGRATE_REFUSED/, io.stderr);
  assert.match(io.stderr, /copies\[0\]\.path/, io.stderr);
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing made outside the policy');
  assert.equal(((await http(sockB, 'GET', `/v1/vms/${name}`)).json as { phase: string }).phase, 'running', 'the VM runs on at B');
  assert.equal((await http(sockA, 'GET', `/v1/vms/${name}`)).status, 404, 'A has no VM');
  assert.deepEqual(leftovers(name, rootA), []);
  const beforeBack = Math.max(...ticks(logB));
  const t1 = Date.now();
  const onB = ['--state-dir', rootB];
  assert.equal(await run(['migrate', name, '--to', sockA, '--address', ipA, '--insecure-network', '--map-path', `${env.dir}=${copyDir}`, ...onB], io = capture()), 0, io.stderr + io.stdout);
  assert.match(io.stderr, /disks: [\d.]+ of 64\.0 MiB copied/, "the disk copy's progress");
  const back = (await http(sockA, 'GET', `/v1/vms/${name}`)).json as { phase: string; spec: { disks: Array<{ image: string }> }; run: { qemu: { pid: number } } };
  assert.equal(back.phase, 'running');
  assert.equal(back.spec.disks[0]!.image, copy, 'the VM on host A uses its own copy');
  assert.equal((await http(sockB, 'GET', `/v1/vms/${name}`)).status, 404);
  assert.deepEqual(leftovers(name, rootB), []);
  const tookBack = Math.ceil((Date.now() - t1) / 1000);
  await waitForText(logA, 'WARDEN-TICK', 30_000);
  const firstBack = Math.min(...ticks(logA));
  assert.ok(firstBack > beforeBack && firstBack <= beforeBack + tookBack + 2, `ticks on (${beforeBack} → ${firstBack})`);
  const later = await waitForText(logA, `WARDEN-TICK ${firstBack + 2}`, 30_000);
  assert.equal(later.includes(GUEST_READY_LINE), false, 'no boot after the move back');
  const read = spawnSync('qemu-io', ['-U', '-r', '-f', 'qcow2', '-c', 'read -P 0x5a 1M 4M', copy], { encoding: 'utf8' });
  assert.match(read.stdout, /read 4194304\/4194304 bytes/, `the copy holds the data the source's chain had: ${read.stdout}${read.stderr}`);
  assert.ok(statSync(copy).size > 4 * 1024 * 1024, 'a full copy, not an overlay');
});
