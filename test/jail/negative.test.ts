/** Negative launches: every bad spec is refused before anything exists on the host (no state dir, cgroup, process). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { launchJail, JailError, type JailSpec } from '../../src/jail/index.js';
import { jailName, probeSpec, tempConfig } from './helpers.js';

const FIRST = 231136; // this file's slice: 231136-231151

const leafExists = (name: string): boolean =>
  ['cpu', 'memory', 'pids', 'devices', 'unified'].some((c) => existsSync(`/sys/fs/cgroup/${c}/warden/${name}`));

test('bad specs are refused with JAIL_INVALID_SPEC and leave nothing behind', async (t) => {
  const config = tempConfig(t, FIRST, 16);
  const base = join(config.stateDir, '..');
  mkdirSync(join(base, 'real'));
  symlinkSync(join(base, 'real'), join(base, 'link'));
  const cases: Array<[string, (s: JailSpec) => JailSpec, string]> = [
    ['relative path', (s) => ({ ...s, mounts: [...s.mounts, { type: 'ro-bind', source: 'usr/share', target: '/share' }] }), 'mounts[4].source'],
    ['dot-dot', (s) => ({ ...s, mounts: [...s.mounts, { type: 'ro-bind', source: '/usr/../etc', target: '/etc' }] }), 'mounts[4].source'],
    ['symlinked bind source', (s) => ({ ...s, mounts: [...s.mounts, { type: 'ro-bind', source: join(base, 'link'), target: '/data' }] }), 'mounts[4].source'],
    ['unlisted device', (s) => ({ ...s, devices: ['/dev/mem'] }), 'devices[0]'],
    ['out-of-range uid', (s) => ({ ...s, identity: { uid: FIRST + 16, gid: FIRST } }), 'identity.uid'],
    ['root uid', (s) => ({ ...s, identity: { uid: 0, gid: 0 } }), 'identity.uid'],
  ];
  for (const [label, mutate, field] of cases) {
    const name = jailName('neg');
    const spec = mutate(probeSpec(name, 'echo should not run'));
    await assert.rejects(launchJail(spec, { fds: new Map(), config }), (e: unknown) => {
      assert.ok(e instanceof JailError, label);
      assert.equal(e.code, 'JAIL_INVALID_SPEC', label);
      assert.ok((e.context['issues'] as Array<{ path: string }>).some((i) => i.path === field), `${label}: names ${field}`);
      return true;
    });
    assert.ok(!existsSync(config.stateDir), `${label}: no lease store created`);
    assert.ok(!existsSync(config.runtimeDir), `${label}: no runtime dir created`);
    assert.ok(!leafExists(name), `${label}: no cgroup created`);
  }
});

test('fds that do not match the spec are refused before anything is created', async (t) => {
  const config = tempConfig(t, FIRST, 16);
  const spec = { ...probeSpec(jailName('neg'), 'true'), fds: [{ name: 'qmp', target: 3 }] };
  await assert.rejects(launchJail(spec, { fds: new Map([['disk', 0]]), config }), /missing: qmp; not in the spec: disk/);
  assert.ok(!existsSync(config.stateDir));
});

test('a chain that fails at start names the cause (bwrap\'s own message, or the helper step) and leaves nothing', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: uid switch and cgroups');
  const config = tempConfig(t, FIRST, 16);
  const hidden = join(config.stateDir, '..', 'hidden'); // the temp dir is 0700: the jail's uid cannot reach it
  mkdirSync(hidden);
  const cases: Array<[string, JailSpec, RegExp]> = [
    ['unreachable bind source', { ...probeSpec(jailName('neg'), 'true'), mounts: [...probeSpec('x', '').mounts, { type: 'ro-bind', source: hidden, target: '/h' }] },
      /bwrap: Can't find source path .*hidden: Permission denied/],
    ['program missing in the view', { ...probeSpec(jailName('neg'), 'true'), argv: ['/opt/nothing/here'] }, /failed at exec of the program \(status 127\)/],
  ];
  for (const [label, spec, message] of cases) {
    await assert.rejects(launchJail(spec, { fds: new Map(), config }), (e: unknown) => {
      assert.ok(e instanceof JailError, label);
      assert.equal(e.code, 'JAIL_LAUNCH_FAILED', label);
      assert.match(e.message, message, label);
      return true;
    });
    assert.ok(!leafExists(spec.name), `${label}: cgroup removed`);
    assert.deepEqual(JSON.parse(readFileSync(join(config.stateDir, 'leases.json'), 'utf8')).jails, {}, `${label}: lease released`);
    assert.ok(!existsSync(join(config.runtimeDir, spec.name)), `${label}: runtime dir removed`);
  }
});
