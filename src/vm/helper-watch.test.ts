/** HelperWatch on real processes: a death is reported once, at once; helpers no longer in the record are let go; a pid already gone is reported. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { NodeFs, loadNative } from '../sys/index.js';
import { HelperWatch } from './helper-watch.js';
import { isAlive, procId } from './proc.js';
import type { HelperRun } from './record.js';

const fs = new NodeFs();

async function helper(jailName: string): Promise<{ run: HelperRun; kill: () => void }> {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  await new Promise((r) => child.once('spawn', r));
  const proc = (await procId(fs, child.pid!))!;
  return { run: { kind: 'test', from: `t.${jailName}`, jailName, proc, uid: 0, gid: 0, cgroups: [] }, kill: () => child.kill('SIGKILL') };
}

/** The jail names reported dead, and a wait for the next report. */
function deaths(): { seen: string[]; report: (h: HelperRun) => void; next: () => Promise<string> } {
  const seen: string[] = [];
  let wake: (() => void) | undefined;
  return {
    seen,
    report: (h) => { seen.push(h.jailName); wake?.(); },
    next: () => new Promise((resolve, reject) => {
      const n = seen.length;
      const timer = setTimeout(() => reject(new Error('no death reported within 5 s')), 5000);
      wake = () => { if (seen.length > n) { clearTimeout(timer); resolve(seen[seen.length - 1]!); } };
    }),
  };
}

test('a killed helper is reported once; the same record followed again reports nothing new; one dropped from the record is not watched', async (t) => {
  const d = deaths();
  const w = new HelperWatch(loadNative(), (p) => isAlive(fs, p), d.report);
  const a = await helper('a');
  const b = await helper('b');
  t.after(() => { w.clear(); a.kill(); b.kill(); });
  w.follow([a.run, b.run]);
  const died = d.next();
  a.kill();
  assert.equal(await died, 'a');
  w.follow([a.run, b.run]); // the record still names a: no news twice
  w.follow([]); // b's run ended (a stop): b is let go
  b.kill();
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(d.seen, ['a']);
});

test('a helper whose process is already gone when followed is reported', async () => {
  const d = deaths();
  const w = new HelperWatch(loadNative(), (p) => isAlive(fs, p), d.report);
  const a = await helper('gone');
  a.kill();
  while (await isAlive(fs, a.run.proc)) await new Promise((r) => setTimeout(r, 20));
  const died = d.next();
  w.follow([a.run]);
  assert.equal(await died, 'gone');
  w.clear();
});
