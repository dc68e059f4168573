/** Unit: the chain's spawn (the addon's posix_spawn, else Node's): fd layout, new session, empty environment, exit and spawn errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { spawnChain, type ChainProcess } from './spawn.js';

/** This process's fds above the chain's layout that are not close-on-exec (inherited so from whoever started it). */
function inheritedOpenOnExec(): number[] {
  return readdirSync('/proc/self/fd').map(Number).filter((fd) => {
    if (fd < 8) return false;
    try { return (parseInt(/^flags:\s+(\d+)/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0', 8) & 0o2000000) === 0; } catch { return false; }
  }).sort((a, b) => a - b);
}

/** The exit, with a timer holding the event loop meanwhile: the chain's exit watch does not (as an unref'd ChildProcess). */
const exited = (child: ChainProcess): Promise<[number | null, string | null]> => new Promise((resolve) => {
  const hold = setInterval(() => undefined, 1000);
  child.once('exit', (code, signal) => { clearInterval(hold); resolve([code, signal]); });
});

test('the chain gets exactly its fds, a new session and no environment; the gate and the setup-error pipe work; its exit is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-spawn-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const statusFd = openSync(join(dir, 'status'), 'w');
  const user = openSync(join(dir, 'user'), 'w');
  const stderr = openSync('/dev/null', 'w');
  // fds: 0 stdin, 1 stdout, 2 setup-error pipe, 3 the user fd, 4 status, 5 gate, 6 stderr.
  const script = 'echo setup-msg >&2; echo user >&3; printf r >&5; head -c1 <&5 >/dev/null; '
    + 'echo "sid=$(cut -d" " -f6 /proc/$$/stat) pid=$$" >&4; echo "env=$(env | grep -v "^PWD=" | wc -l)" >&4; exec ls -1 /proc/self/fd >&4';
  let child: ChainProcess;
  try {
    child = spawnChain(['/bin/sh', '-c', script], { stdin: 'ignore', stdout: 'ignore', stderr }, [user], statusFd);
  } finally {
    for (const fd of [statusFd, user, stderr]) closeSync(fd);
  }
  const exit = exited(child);
  const gate = child.stdio[child.stdio.length - 2] as Duplex;
  let setup = '';
  (child.stdio[2] as Readable).on('data', (b: Buffer) => { setup += b.toString(); });
  await new Promise<void>((resolve) => gate.once('data', (b: Buffer) => { assert.equal(b.toString(), 'r'); resolve(); }));
  gate.write('g');
  assert.deepEqual(await exit, [0, null]);
  gate.destroy();
  const out = readFileSync(join(dir, 'status'), 'utf8');
  // ls lists its own directory fd (7) besides the chain's 0-6, and whatever this process inherited without close-on-exec (as any spawn passes on).
  assert.deepEqual(out.split('\n').filter((l) => /^\d+$/.test(l)).map(Number).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, ...inheritedOpenOnExec()], 'no fd of this process leaks into the chain');
  assert.match(out, new RegExp(`^sid=${child.pid} pid=${child.pid}$`, 'm'), 'its own session (detached)');
  assert.match(out, /^env=0$/m);
  assert.equal(readFileSync(join(dir, 'user'), 'utf8'), 'user\n');
  await new Promise((r) => setImmediate(r));
  assert.match(setup, /setup-msg/);
});

test('an exit code and a signal (by name) are reported; a program that cannot be executed is an error event', async () => {
  const stderr = openSync('/dev/null', 'w');
  const status = openSync('/dev/null', 'w');
  try {
    const child = spawnChain(['/bin/sh', '-c', 'kill -TERM $$'], { stdin: 'ignore', stdout: 'ignore', stderr }, [], status);
    assert.deepEqual(await exited(child), [null, 'SIGTERM']);
    assert.deepEqual(await exited(spawnChain(['/bin/sh', '-c', 'exit 7'], { stdin: 'ignore', stdout: 'ignore', stderr }, [], status)), [7, null]);
    const missing = spawnChain(['/nonexistent/warden-helper'], { stdin: 'ignore', stdout: 'ignore', stderr }, [], status);
    const error = await new Promise<Error>((resolve) => missing.once('error', resolve));
    assert.equal((error as NodeJS.ErrnoException).code, 'ENOENT');
    assert.equal(missing.pid, undefined);
  } finally {
    closeSync(stderr);
    closeSync(status);
  }
});
