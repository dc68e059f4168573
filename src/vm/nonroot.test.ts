import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE, repoRoot } from './guest.js';
import { testEnv, vmName, waitForText } from './testing.js';

const NOBODY = 65534;

function chownTree(p: string): void {
  chownSync(p, NOBODY, NOBODY);
  if (statSync(p).isDirectory()) for (const f of readdirSync(p)) chownTree(join(p, f));
}

test('as a non-root user a VM with user networking runs, and inspect names the protections that are off', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to switch to the unprivileged test user');
  // A user runs warden from a checkout they can read: one under a 0700 directory (/root) is not theirs to run.
  const bin = join(repoRoot(), 'dist', 'src', 'cli', 'bin.js');
  if (spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'test', '-r', bin]).status !== 0) {
    return t.skip(`${bin} is not readable by uid ${NOBODY} (the checkout is in a directory other users cannot enter)`);
  }
  const env = testEnv('warden-vm-nonroot-');
  const name = vmName('wdv-nonroot');
  const spec = env.specFile({ name, networks: [{ name: 'n0', type: 'user' }] });
  chownTree(env.dir);
  const warden = (...args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync('setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, bin, ...args, '--state-dir', env.stateRoot],
    { encoding: 'utf8', timeout: 60_000, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: env.dir } });
  t.after(() => { warden('kill', name); env.cleanup(); });

  const r = warden('run', spec, '--detach');
  assert.equal(r.status, 0, r.stderr);
  await waitForText(join(env.stateRoot, 'vms', name, 'serial.log'), GUEST_READY_LINE, 60_000);
  const i = warden('inspect', name, '--json');
  assert.equal(i.status, 0, i.stderr);
  const view = JSON.parse(i.stdout) as { phase: string; run: { uid: number }; protectionsOff: string[]; process: { uid: number; seccomp: number } };
  assert.equal(view.phase, 'running');
  assert.equal(view.process.uid, NOBODY, 'QEMU runs as the calling user');
  assert.equal(view.process.seccomp, 2, 'QEMU\'s own seccomp filter still applies');
  assert.ok(view.protectionsOff.some((p) => /uid switch/.test(p)) && view.protectionsOff.some((p) => /cgroup/.test(p)), view.protectionsOff.join('; '));
  const s = warden('stop', name, '--timeout', '60');
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stderr, /the guest powered off/);
});
