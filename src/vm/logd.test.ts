/** @module vm/logd.test: the real log writer (native/warden-logd): rotation at the cap, privilege drop, lifetime bound to its pipes, failures that leave no fd. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, constants as C, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNative, NodeFs } from '../sys/index.js';
import { LogPipes, LOGD_USER, logdPath } from './logd.js';
import { procId, procStatus } from './proc.js';
import { waitGone } from './teardown.js';
import { holdersUnder, waitForText } from './testing.js';
import { VmError } from './errors.js';
import { StateStore } from './store.js';
import { formatInspection, inspectRecord } from './view.js';
import type { VmRecord } from './record.js';

const fs = new NodeFs();
const isRoot = process.getuid?.() === 0;

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-logd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Writes `data` in pieces of `piece` bytes (a guest printing line after line). */
function writeInPieces(fd: number, data: Buffer, piece: number): void {
  for (let at = 0; at < data.length; at += piece) writeSync(fd, data, at, Math.min(piece, data.length - at));
}

test('the writer keeps each log under its cap by rotating to .1; what is on disk is the newest output, in order', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  const cap = 64 * 1024;
  const w = logs.add('serial', join(dir, 'serial.log'), cap, 'wlp-rot');
  const pid = await logs.spawn('wlp-rot', isRoot ? LOGD_USER : null);
  const id = (await procId(fs, pid))!;
  // 300 KiB of numbered lines, 4.7 caps' worth
  const text = Buffer.from(Array.from({ length: 20_000 }, (_, i) => `line ${String(i).padStart(8, '0')}\n`).join(''));
  writeInPieces(w, text, 1000);
  logs.close(); // the last write end: the writer drains and exits
  assert.ok(await waitGone(fs, id, 10_000), 'the writer exits at end of file');
  const now = readFileSync(join(dir, 'serial.log'));
  const before = readFileSync(join(dir, 'serial.log.1'));
  assert.ok(now.length <= cap && before.length <= cap, `sizes ${now.length} and ${before.length} are within ${cap}`);
  assert.ok(now.length > 0 && before.length > 0);
  const kept = Buffer.concat([before, now]);
  assert.ok(text.subarray(text.length - kept.length).equals(kept), 'serial.log.1 then serial.log is the tail of the output, nothing reordered or lost in between');
});

test('a burst longer than the cap keeps its last cap bytes', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  const cap = 64 * 1024;
  const w = logs.add('s', join(dir, 'a.log'), cap, 'wlp-burst');
  const id = (await procId(fs, await logs.spawn('wlp-burst', null)))!;
  const big = Buffer.alloc(cap * 3);
  for (let i = 0; i < big.length; i++) big[i] = 65 + (i % 26);
  writeSync(w, big); // larger than the pipe: the writer reads it in several chunks
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
  const now = readFileSync(join(dir, 'a.log'));
  assert.ok(now.length <= cap);
  assert.ok(big.subarray(big.length - now.length).equals(now));
});

test('as root the writer runs as its own uid with no capabilities, no new privileges, and holds only its own fds', { skip: isRoot ? false : 'needs root (the writer drops privileges only when started by root)' }, async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  logs.add('a', join(dir, 'a.log'), 1 << 20, 'wlp-priv');
  logs.add('b', join(dir, 'b.log'), 1 << 20, 'wlp-priv');
  const pid = await logs.spawn('wlp-priv', LOGD_USER);
  const id = (await procId(fs, pid))!;
  const st = (await procStatus(fs, pid))!;
  assert.equal(st['Uid']!.split(/\s+/)[0], String(LOGD_USER.uid));
  assert.deepEqual(new Set(st['Uid']!.split(/\s+/)), new Set([String(LOGD_USER.uid)]), 'real, effective, saved and fs uid');
  assert.equal(st['Groups'], '');
  assert.equal(st['CapEff'], '0000000000000000');
  assert.equal(st['CapPrm'], '0000000000000000');
  assert.equal(st['NoNewPrivs'], '1');
  // stdin, stdout, stderr and three per stream: nothing else of this process leaked into it
  assert.deepEqual(readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
});

test('the writer lives as long as any write end is open, and a writer whose reader died gets EPIPE instead of blocking', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  const a = logs.add('a', join(dir, 'a.log'), 1 << 20, 'wlp-life');
  const b = logs.add('b', join(dir, 'b.log'), 1 << 20, 'wlp-life');
  const id = (await procId(fs, await logs.spawn('wlp-life', null)))!;
  closeSync(a);
  assert.equal(await waitGone(fs, id, 300), false, 'one stream still open: still running');
  writeSync(b, 'still logged\n');
  await waitForText(join(dir, 'b.log'), 'still logged', 10_000); // written once the writer has read it
  process.kill(id.pid, 'SIGKILL');
  assert.ok(await waitGone(fs, id, 5000));
  assert.throws(() => writeSync(b, 'x'), (e: NodeJS.ErrnoException) => e.code === 'EPIPE');
  assert.equal(readFileSync(join(dir, 'b.log'), 'utf8'), 'still logged\n');
  assert.equal(statSync(join(dir, 'a.log')).size, 0);
});

test('a writer that cannot start is a VM_START_FAILED naming it, and leaves no fd open', async (t) => {
  const dir = tempDir(t);
  const before = openFds();
  const logs = new LogPipes();
  logs.add('a', join(dir, 'a.log'), 1 << 20, 'wlp-bad');
  await assert.rejects(logs.spawn('wlp-bad', null, join(dir, 'no-such-writer')), (e: unknown) => {
    assert.ok(e instanceof VmError);
    assert.equal(e.code, 'VM_START_FAILED');
    assert.match(e.message, /log writer of VM wlp-bad did not start/);
    return true;
  });
  logs.close();
  assert.equal(openFds(), before);
  // a log path that cannot be opened: same code, the path named, nothing left open
  assert.throws(() => logs.add('b', join(dir, 'missing', 'b.log'), 1 << 20, 'wlp-bad'), /opening the log .*missing\/b\.log for VM wlp-bad failed/);
  assert.equal(openFds(), before);
});

/** Runs the writer binary on one stream with fds chosen by the test (fault injection); resolves with its exit code. */
function runWriterOn(fds: { read: number; log: number; rotated: number }, cap: number): Promise<number | null> {
  const child = spawn(logdPath(), [`3:4:5:${cap}`], { stdio: ['ignore', 'ignore', 'ignore', fds.read, fds.log, fds.rotated], env: {} });
  const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) => child.once('exit', (code) => { clearTimeout(kill); resolve(code); }));
}

test('a rotation that cannot replace LOG.1 still empties the log: the cap holds, the old output is lost', async (t) => {
  const dir = tempDir(t);
  const cap = 16 * 1024;
  const [read, write] = loadNative().pipe();
  const log = openSync(join(dir, 'a.log'), C.O_RDWR | C.O_CREAT | C.O_APPEND, 0o600);
  writeFileSync(join(dir, 'a.log.1'), '');
  const rotated = openSync(join(dir, 'a.log.1'), C.O_RDONLY); // ftruncate and pwrite fail on it
  const exited = runWriterOn({ read, log, rotated }, cap);
  for (const fd of [read, log, rotated]) closeSync(fd);
  writeInPieces(write, Buffer.alloc(cap * 4, 'x'), 1000);
  closeSync(write);
  assert.equal(await exited, 0);
  const size = statSync(join(dir, 'a.log')).size;
  assert.ok(size > 0 && size <= cap, `a.log is ${size} bytes, cap ${cap}`);
});

test('a log left longer than the cap (an earlier run with a larger cap) rotates only its last cap bytes into .1', async (t) => {
  const dir = tempDir(t);
  const cap = 16 * 1024;
  const old = Buffer.from(Array.from({ length: 4000 }, (_, i) => `old ${String(i).padStart(6, '0')}\n`).join('')); // 44000 bytes, over 2.5 caps
  writeFileSync(join(dir, 'a.log'), old);
  const logs = new LogPipes();
  t.after(() => logs.close());
  const w = logs.add('a', join(dir, 'a.log'), cap, 'wrv-old');
  const id = (await procId(fs, await logs.spawn('wrv-old', null)))!;
  writeSync(w, 'new line\n');
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
  const rotated = readFileSync(join(dir, 'a.log.1'));
  assert.ok(rotated.length <= cap, `a.log.1 is ${rotated.length} bytes, cap ${cap}`);
  assert.ok(old.subarray(old.length - rotated.length).equals(rotated), 'a.log.1 is the newest part of the old log');
  assert.equal(readFileSync(join(dir, 'a.log'), 'utf8'), 'new line\n');
});

test('a stalled writer holds QEMU back only after 1 MiB: each pipe is enlarged from the default 64 KiB', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  const w = logs.add('a', join(dir, 'a.log'), 4 << 20, 'wrv-stall');
  const id = (await procId(fs, await logs.spawn('wrv-stall', isRoot ? LOGD_USER : null)))!;
  process.kill(id.pid, 'SIGSTOP'); // a writer waiting on a slow disk drains nothing meanwhile
  t.after(() => { try { process.kill(id.pid, 'SIGCONT'); } catch { /* gone */ } });
  // 768 KiB into the pipe from another process (a blocked write here would block the test itself)
  const filler = spawn('head', ['-c', String(768 * 1024), '/dev/zero'], { stdio: ['ignore', w, 'ignore'] });
  const done = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => { filler.kill('SIGKILL'); resolve(false); }, 10_000);
    filler.once('exit', (code) => { clearTimeout(timer); resolve(code === 0); });
  });
  assert.ok(done, 'the 768 KiB fit in the pipe while the writer was stopped');
  process.kill(id.pid, 'SIGCONT');
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
  assert.equal(statSync(join(dir, 'a.log')).size, 768 * 1024, 'and all of it reached the log once the writer ran again');
});

test('the writer gets no environment from the manager (it may hold secrets)', { skip: isRoot ? false : 'needs root (a non-dumpable process\'s environ is readable only with CAP_SYS_PTRACE)' }, async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  logs.add('a', join(dir, 'a.log'), 1 << 20, 'wrv-env');
  process.env['WRV_LOGD_SECRET'] = 'hunter2';
  t.after(() => { delete process.env['WRV_LOGD_SECRET']; });
  const id = (await procId(fs, await logs.spawn('wrv-env', LOGD_USER)))!;
  assert.equal(readFileSync(`/proc/${id.pid}/environ`, 'latin1'), '');
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
});

test('a --user the writer cannot drop to exactly (-1 means "unchanged" to setresuid, overflow wraps) stops it before it is ready', { skip: isRoot ? false : 'needs root (only root drops privileges)' }, async (t) => {
  const dir = tempDir(t);
  for (const user of [{ uid: 4294967295, gid: 4294967295 }, { uid: LOGD_USER.uid, gid: 4294967295 }, { uid: 99_999_999_999, gid: 1 }]) {
    const logs = new LogPipes();
    t.after(() => logs.close());
    logs.add('a', join(dir, 'a.log'), 1 << 20, 'wrv-user');
    await assert.rejects(logs.spawn('wrv-user', user), (e: unknown) => e instanceof VmError && /did not start: it exited \(3\): warden-logd: dropping to \d+:\d+: Invalid argument/.test(e.message), `--user ${user.uid}:${user.gid}`);
    logs.close();
  }
});

test('inspect says when the writer is stopped (QEMU then freezes once a pipe is full), not just that it is alive', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  logs.add('a', join(dir, 'a.log'), 1 << 20, 'wrv-insp');
  const id = (await procId(fs, await logs.spawn('wrv-insp', isRoot ? LOGD_USER : null)))!;
  const now = new Date().toISOString();
  const rec: VmRecord = { version: 1, name: 'wrv-insp', phase: 'running', spec: {}, createdAt: now, updatedAt: now,
    run: { qemu: id, uid: 0, gid: 0, accel: 'tcg', startedAt: now, jailName: 'wrv-insp', cgroups: [], protectionsOff: [], logd: id },
    undo: [{ kind: 'logd', proc: id }] };
  const store = new StateStore(join(dir, 'state'), fs);
  const running = await inspectRecord(fs, store, rec);
  assert.deepEqual(running.logWriter, { pid: id.pid, alive: true, stopped: false, uid: process.getuid!() === 0 ? LOGD_USER.uid : process.getuid!() });
  process.kill(id.pid, 'SIGSTOP');
  t.after(() => { try { process.kill(id.pid, 'SIGCONT'); } catch { /* gone */ } });
  let stopped = await inspectRecord(fs, store, rec);
  for (let i = 0; i < 100 && !stopped.logWriter!.stopped; i++) { await new Promise((r) => setTimeout(r, 20)); stopped = await inspectRecord(fs, store, rec); }
  assert.equal(stopped.logWriter!.stopped, true);
  assert.match(formatInspection(stopped), new RegExp(`log writer: pid ${id.pid} .* is STOPPED`));
  process.kill(id.pid, 'SIGCONT');
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
});

test('a writer that hangs before it is ready fails the start in bounded time, is killed, and leaves no fd', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const hang = join(dir, 'hanging-writer');
  writeFileSync(hang, '#!/bin/sh\nexec sleep 60\n'); // never writes its ready byte
  chmodSync(hang, 0o755);
  const before = openFds();
  const logs = new LogPipes();
  logs.add('a', join(dir, 'a.log'), 1 << 20, 'wrv-hang');
  await assert.rejects(logs.spawn('wrv-hang', null, hang, 500), (e: unknown) => e instanceof VmError && /did not report ready within 500 ms/.test(e.message));
  logs.close();
  assert.equal(openFds(), before);
  assert.deepEqual(holdersUnder(dir), [], 'the hanging writer was killed: nothing holds the logs');
});

test('a file-size limit inherited from the starter does not kill the writer (SIGXFSZ), and is lifted where root may', async (t) => {
  const dir = tempDir(t);
  const log = openSync(join(dir, 'x.log'), C.O_RDWR | C.O_CREAT | C.O_APPEND, 0o600);
  const rotated = openSync(join(dir, 'x.log.1'), C.O_RDWR | C.O_CREAT, 0o600);
  const [read, write] = loadNative().pipe();
  // prlimit execs the writer with RLIMIT_FSIZE at 4 KiB, as a manager run under such a limit would
  const child = spawn('prlimit', ['--fsize=4096', '--', logdPath(), `3:4:5:${1 << 20}`], { stdio: ['ignore', 'pipe', 'pipe', read, log, rotated] });
  for (const fd of [read, log, rotated]) closeSync(fd);
  const exited = new Promise<number | string | null>((r) => child.once('exit', (code, sig) => r(sig ?? code)));
  await new Promise((r) => child.stdout!.once('data', r));
  writeSync(write, Buffer.alloc(32 * 1024, 0x41));
  closeSync(write);
  assert.equal(await exited, 0, 'exit status 0: not killed by SIGXFSZ, drained the pipe to its end');
  // Lifting the hard limit needs CAP_SYS_RESOURCE, which root lacks on some hosts (this one).
  const canRaise = (BigInt(`0x${readFileSync('/proc/self/status', 'utf8').match(/CapEff:\s*([0-9a-f]+)/)?.[1] ?? '0'}`) & (1n << 24n)) !== 0n;
  assert.equal(statSync(join(dir, 'x.log')).size, canRaise ? 32 * 1024 : 4096, canRaise ? 'the limit was lifted' : 'as much as the limit allows');
});

test('a banner set before the streams are added opens each log, before anything the writer appends', async (t) => {
  const dir = tempDir(t);
  const logs = new LogPipes();
  t.after(() => logs.close());
  logs.banner = '--- warden: VM wlp-banner starting at 2026-11-29T00:00:00.000Z ---\n';
  const w = logs.add('s', join(dir, 's.log'), 1 << 20, 'wlp-banner');
  const id = (await procId(fs, await logs.spawn('wlp-banner', isRoot ? LOGD_USER : null)))!;
  writeSync(w, 'guest output\n');
  logs.close();
  assert.ok(await waitGone(fs, id, 10_000));
  assert.equal(readFileSync(join(dir, 's.log'), 'utf8'), `${logs.banner}guest output\n`);
});
