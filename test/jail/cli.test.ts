/** The `warden jail` verb end to end: a real process tree with stray inherited fds, exit statuses, detach and teardown. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isRoot, jailName, tempConfig } from './helpers.js';

const FIRST = 231184; // this file's slice: 231184-231199
const BIN = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'src', 'cli', 'bin.js');

function setup(t: import('node:test').TestContext): { dir: string; spec: string; flags: string[]; name: string } {
  const config = tempConfig(t, FIRST, 16);
  const dir = join(config.stateDir, '..');
  chmodSync(dir, 0o755);
  const name = jailName('cli');
  const spec = join(dir, 'spec.json');
  writeFileSync(spec, JSON.stringify({
    name, identity: { lease: true }, network: { mode: 'none' }, mounts: [{ type: 'ro-bind', source: '/usr', target: '/usr' }],
    devices: [], fds: [{ name: 'in', target: 3 }], env: {}, cwd: '/', argv: ['/usr/bin/true'],
  }));
  writeFileSync(join(dir, 'in.txt'), 'from fd 3\n');
  t.after(() => { spawnSync(process.execPath, [BIN, 'jail', '--teardown', name, ...flags]); });
  const flags = ['--state-dir', config.stateDir, '--runtime-dir', config.runtimeDir, '--uid-range', `${FIRST}-${FIRST + 15}`];
  return { dir, spec, flags, name };
}

/** Runs the CLI from a shell that holds stray non-CLOEXEC fds 7 and 9, as a careless parent would. */
function warden(dir: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const script = `exec 7</etc/hostname 9</dev/null 3<'${join(dir, 'in.txt')}'; exec '${process.execPath}' '${BIN}' ${quoted}`;
  const r = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('warden jail: the program gets fd 3 and nothing else the caller leaked; exit status 0', (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const { dir, spec, flags, name } = setup(t);
  const r = warden(dir, ['jail', '--spec', spec, ...flags, '--', '/usr/bin/busybox', 'sh', '-c', 'cat <&3; ls /proc/self/fd | tr "\\n" " "']);
  assert.equal(r.status, 0, r.stderr);
  const [line1, line2] = r.stdout.split('\n');
  assert.equal(line1, 'from fd 3');
  // ls's own directory fd is the one past the allowlist (4); 7 and 9 from the shell must be gone.
  assert.equal(line2!.trim(), '0 1 2 3 4');
  assert.ok(!existsSync(`/sys/fs/cgroup/pids/warden/${name}`), 'foreground mode tears down');
});

test('warden jail: a failing program fails the command with its own exit status, named in the message', (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const { dir, spec, flags } = setup(t);
  const r = warden(dir, ['jail', '--spec', spec, ...flags, '--', '/usr/bin/busybox', 'sh', '-c', 'exit 3']);
  assert.equal(r.status, 3, 'the program status passes through, as with docker run');
  assert.match(r.stderr, /exited with status 3 \[JAIL_PROGRAM_FAILED\]/);
});

test('warden jail --detach, --list, --teardown', (t) => {
  if (!isRoot()) return t.skip('needs root: uid switch and cgroups');
  const { dir, spec, flags, name } = setup(t);
  const r = warden(dir, ['jail', '--spec', spec, ...flags, '--detach', '--', '/usr/bin/busybox', 'sleep', '30']);
  assert.equal(r.status, 0, r.stderr);
  const h = JSON.parse(r.stdout) as { pid: number; uid: number };
  assert.ok(existsSync(`/proc/${h.pid}`), 'running after the CLI exited');
  const list = JSON.parse(warden(dir, ['jail', '--list', '--json', ...flags]).stdout) as Array<{ name: string; running: boolean }>;
  assert.deepEqual(list.map((j) => [j.name, j.running]), [[name, true]]);
  const down = JSON.parse(warden(dir, ['jail', '--teardown', name, '--json', ...flags]).stdout) as { found: boolean; killed: number[] };
  assert.equal(down.found, true);
  assert.ok(down.killed.includes(h.pid));
  assert.ok(!existsSync(`/sys/fs/cgroup/pids/warden/${name}`));
});

test('warden jail: an invalid spec is refused with the field named and a JSON error', (t) => {
  const { dir, spec, flags } = setup(t);
  const r = warden(dir, ['jail', '--spec', spec, '--json', ...flags, '--', 'bin/true']);
  assert.notEqual(r.status, 0);
  const err = (JSON.parse(r.stdout) as { error: { code: string; context: { issues: Array<{ path: string }> } } }).error;
  assert.equal(err.code, 'JAIL_INVALID_SPEC');
  assert.deepEqual(err.context.issues.map((i) => i.path), ['argv[0]']);
  const none = warden(dir, ['jail', ...flags]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /--spec FILE is required/);
});
