/** @module vm/proc.test: signalling by recorded identity: a pid that now belongs to another process is never hit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { NodeFs } from '../sys/index.js';
import { isAlive, procChildren, procId, procStat, signalProc } from './proc.js';
import { waitGone } from './teardown.js';

const fs = new NodeFs();

test('signalProc hits the recorded process, spares a process with the same pid but another start time, and says false when it is gone', async (t) => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => { child.kill('SIGKILL'); });
  await new Promise((r) => child.once('spawn', r));
  const id = (await procId(fs, child.pid!))!;
  // the same pid with another start time: what a recorded QEMU looks like after its pid was reused
  assert.equal(await signalProc(fs, { pid: id.pid, startTime: id.startTime + 1 }, 'SIGKILL'), false);
  assert.ok(await isAlive(fs, id), 'the other process was not touched');
  assert.equal(await signalProc(fs, id, 'SIGKILL'), true);
  const exited = new Promise((r) => child.once('exit', r));
  await exited;
  assert.ok(await waitGone(fs, id, 5000));
  assert.equal(await signalProc(fs, id, 'SIGKILL'), false, 'gone (reaped): false, no error');
});

test('signalProc on a zombie (exited, not yet reaped by its parent) says gone and does not throw', async (t) => {
  // sh forks a short sleep, then becomes a long sleep that never reaps it: the short one stays a zombie
  const parent = spawn('sh', ['-c', 'sleep 0.05 & exec sleep 60'], { stdio: 'ignore' });
  t.after(() => { parent.kill('SIGKILL'); });
  await new Promise((r) => parent.once('spawn', r));
  let zombie: number | undefined;
  for (let i = 0; i < 200 && zombie === undefined; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const [child] = (await procChildren(fs, parent.pid!));
    if (child !== undefined && (await procStat(fs, child))?.state === 'Z') zombie = child;
  }
  assert.ok(zombie !== undefined, 'the short sleep became a zombie');
  const id = (await procId(fs, zombie))!;
  assert.equal(await isAlive(fs, id), false);
  assert.equal(await signalProc(fs, id, 'SIGKILL'), false);
});

test('a recorded identity from another boot names no live process, even when this boot has its pid and start time', async (t) => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => { child.kill('SIGKILL'); });
  await new Promise((r) => child.once('spawn', r));
  const id = (await procId(fs, child.pid!))!;
  assert.match(id.boot ?? '', /^[0-9a-f-]{36}$/, 'recorded with this boot\'s id');
  // What a record written before a power loss looks like when an early process of the next boot
  // got the same pid and start time: it must never be signalled.
  const before = { ...id, boot: '00000000-0000-0000-0000-000000000000' };
  assert.equal(await isAlive(fs, before), false);
  assert.equal(await signalProc(fs, before, 'SIGKILL'), false);
  assert.ok(await isAlive(fs, id), 'the live process was not touched');
  // A record of an older version (no boot id) is judged by pid and start time, as before.
  const { boot: _boot, ...legacy } = id;
  assert.ok(await isAlive(fs, legacy));
});
