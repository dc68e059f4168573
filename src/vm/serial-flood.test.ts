/** @module vm/serial-flood.test: a guest that floods its console cannot grow the serial log past serial.logMax, with no warden command running meanwhile. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, readdirSync, statSync } from 'node:fs';
import { openManager } from './open.js';
import { procStatus } from './proc.js';
import { holdersUnder, leftovers, testEnv, vmName } from './testing.js';
import { LOGD_USER } from './logd.js';
import { NodeFs } from '../sys/index.js';

const root = process.getuid?.() === 0;
const CAP = 64 * 1024;
const FLOOD = 1024 * 1024;

const size = (p: string): number => (existsSync(p) ? statSync(p).size : 0);

/** A started VM whose guest prints `bytes` of console output once up; killed and cleaned up after the test. */
async function floodingVm(t: { after(fn: () => Promise<void>): void }, tag: string, bytes: number, serialLogMax?: string) {
  const env = testEnv();
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName(tag);
  t.after(async () => {
    await m.kill(name).catch(() => undefined);
    env.cleanup();
  });
  await m.create(env.specFile({ name, cmdline: `warden.flood=${bytes}`, ...(serialLogMax === undefined ? {} : { serialLogMax }) }));
  const started = await m.start(name);
  return { env, m, name, started, paths: m.store.paths(name) };
}

test('a 1 MiB console flood keeps serial.log and serial.log.1 within a 64Ki logMax; QEMU holds pipes, not log files; the writer goes with the VM', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip('needs root: the log writer drops to its own uid and QEMU runs jailed');
  const { env, m, name, started, paths } = await floodingVm(t, 'wlp-flood', FLOOD, '64Ki');

  // No warden command runs from here until the flood is over: the cap holds on its own.
  // Done means the end of the output is on disk: finding the marker alone is not enough, its
  // line end may still be in the pipe, or be written after one more rotation.
  const read = (p: string): string => (existsSync(p) ? readFileSync(p, 'latin1') : '');
  const END = /WARDEN-FLOOD 0123456789abcdefghijklmnopqrstuvwxyz\r?\n(.*\r?\n)?WARDEN-FLOOD-DONE\r?\n$/;
  let largest = 0;
  const deadline = Date.now() + 150_000;
  while (!END.test(read(`${paths.serialLog}.1`) + read(paths.serialLog))) {
    largest = Math.max(largest, size(paths.serialLog), size(`${paths.serialLog}.1`));
    assert.ok(Date.now() < deadline, `the flood did not finish; serial.log ends with ${read(paths.serialLog).slice(-300)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  largest = Math.max(largest, size(paths.serialLog), size(`${paths.serialLog}.1`));
  assert.ok(largest <= CAP, `largest size seen ${largest} is within ${CAP}`);
  assert.ok(size(`${paths.serialLog}.1`) > 0, 'the log was rotated');

  // QEMU writes both logs through pipes; the only holder of the log files is the writer, as its own uid.
  const qemuPid = started.record.run!.qemu.pid;
  const qemuFds = readdirSync(`/proc/${qemuPid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${qemuPid}/fd/${fd}`); } catch { return ''; } });
  assert.ok(!qemuFds.some((p) => p.endsWith('.log') || p.endsWith('.log.1')), `QEMU holds no log file: ${qemuFds.join(' ')}`);
  assert.ok(qemuFds.filter((p) => p.startsWith('pipe:')).length >= 2, 'serial log and stderr are pipes');
  const holders = new Set(holdersUnder(paths.dir).filter(([, p]) => p.includes('.log')).map(([pid]) => pid));
  assert.equal(holders.size, 1, `one process holds the logs: ${[...holders].join(', ')}`);
  const writer = [...holders][0]!;
  assert.equal((await procStatus(new NodeFs(), writer))!['Uid']!.split(/\s+/)[0], String(LOGD_USER.uid));

  assert.deepEqual(await m.qmp(name, 'query-status'), { status: 'running', singlestep: false, running: true }, 'the guest kept running through the flood');
  await m.stop(name, { timeoutS: 30 });
  assert.deepEqual(leftovers(name, env.stateRoot), [], 'QEMU, the log writer and everything else are gone');
});

test('with its log writer killed mid-flood, QEMU gets EPIPE (it ignores SIGPIPE) and the guest runs on; stop leaves nothing', { timeout: 180_000 }, async (t) => {
  if (!root) return t.skip('needs root: QEMU runs jailed');
  const { env, m, name, paths } = await floodingVm(t, 'wlp-epipe', 4 * FLOOD);
  const deadline = Date.now() + 120_000;
  while (!readFileSync(paths.serialLog, 'latin1').includes('WARDEN-FLOOD 0123')) {
    assert.ok(Date.now() < deadline, 'the flood did not begin');
    await new Promise((r) => setTimeout(r, 20));
  }
  const writers = new Set(holdersUnder(paths.dir).filter(([, p]) => p.includes('.log')).map(([pid]) => pid));
  assert.equal(writers.size, 1);
  process.kill([...writers][0]!, 'SIGKILL');
  const cut = size(paths.serialLog);
  assert.match(readFileSync(paths.serialLog, 'latin1'), new RegExp(`^--- warden: VM ${name} starting at \\S+ ---\\n`), 'each run opens the log with a banner');
  await new Promise((r) => setTimeout(r, 2000));
  // QMP itself, not a deep reconcile: that one keeps the recorded phase when QMP does not answer.
  assert.deepEqual(await m.qmp(name, 'query-status'), { status: 'running', singlestep: false, running: true }, 'QEMU survived writing to a pipe with no reader');
  assert.ok(!readFileSync(paths.serialLog, 'latin1').includes('WARDEN-FLOOD-DONE'), 'the flood was cut off mid-way');
  assert.ok(size(paths.serialLog) - cut < 128 * 1024, 'nothing but what was already in the pipe reached the log afterwards');
  await m.stop(name, { timeoutS: 30 });
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
