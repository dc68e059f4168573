import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkJailSpec } from './validate.js';
import { checkJailHost, validateJailSpec, type HostProbe } from './validate-host.js';
import { defaultJailerConfig } from './config.js';
import { JailError } from './errors.js';
import type { JailSpec } from './spec.js';

const config = defaultJailerConfig({ uidRange: { first: 231072, count: 128 }, allowedGroups: [993] });

function spec(over: Partial<JailSpec> = {}): JailSpec {
  return {
    name: 'warden-test-jail-v', identity: { uid: 231080, gid: 231080 }, network: { mode: 'none' },
    mounts: [{ type: 'ro-bind', source: '/usr', target: '/usr' }, { type: 'symlink', linkTarget: 'usr/bin', path: '/bin' }],
    devices: ['/dev/null'], fds: [{ name: 'qmp', target: 3 }], env: { PATH: '/usr/bin' }, cwd: '/', argv: ['/usr/bin/true'],
    ...over,
  };
}

const paths = (s: JailSpec): string[] => checkJailSpec(s, config).map((i) => i.path);

test('Landlock lists longer than the exec helper takes are refused by validation, not by the helper', () => {
  const many = (n: number): string[] => Array.from({ length: n }, (_, i) => `/srv/p${i}`);
  assert.deepEqual(paths(spec({ landlock: { readOnly: many(62), readWrite: many(61).map((p) => `${p}w`) } })), []);
  assert.deepEqual(paths(spec({ landlock: { readOnly: many(63), readWrite: many(62).map((p) => `${p}w`) } })), ['landlock.readOnly', 'landlock.readWrite']);
});

test('a well-formed spec has no issues', () => {
  assert.deepEqual(checkJailSpec(spec(), config), []);
  assert.deepEqual(checkJailSpec(spec({ identity: { lease: true } }), config), []);
});

test('relative paths and ".." are refused wherever a path appears, naming the field', () => {
  const bad = spec({
    mounts: [{ type: 'ro-bind', source: 'usr', target: '/usr' }, { type: 'bind', source: '/srv/../etc', target: '/etc' },
      { type: 'tmpfs', target: 'tmp' }, { type: 'symlink', linkTarget: '../x', path: '/y' }],
    cwd: 'home', argv: ['bin/sh'], landlock: { readOnly: ['/usr/./lib'], readWrite: [] },
  });
  assert.deepEqual(paths(bad).sort(), ['argv[0]', 'cwd', 'landlock.readOnly[0]', 'mounts[0].source', 'mounts[1].source', 'mounts[2].target', 'mounts[3].linkTarget'].sort());
  const issue = checkJailSpec(bad, config).find((i) => i.path === 'mounts[1].source')!;
  assert.match(issue.message, /must not contain "\.\."/);
});

test('uids outside the range, gid 0 and unlisted groups are refused', () => {
  assert.deepEqual(paths(spec({ identity: { uid: 0, gid: 231080 } })), ['identity.uid']);
  assert.deepEqual(paths(spec({ identity: { uid: 231080, gid: 231200 } })), ['identity.gid']);
  assert.deepEqual(paths(spec({ identity: { uid: 231080, gid: 231080, groups: [993, 0, 5] } })), ['identity.groups[1]', 'identity.groups[2]']);
});

test('unlisted devices, reserved targets, duplicate targets and fd numbering are refused', () => {
  assert.deepEqual(paths(spec({ devices: ['/dev/sda', '/dev/kvm'] })), ['devices[0]']);
  assert.deepEqual(paths(spec({ mounts: [{ type: 'ro-bind', source: '/usr', target: '/proc/sys' }, { type: 'dir', target: '/dev/x' }, { type: 'tmpfs', target: '/' }] })),
    ['mounts[0].target', 'mounts[1].target', 'mounts[2].target']);
  assert.deepEqual(paths(spec({ mounts: [{ type: 'dir', target: '/a' }, { type: 'tmpfs', target: '/a' }] })), ['mounts[1].target']);
  assert.deepEqual(paths(spec({ fds: [{ name: 'a', target: 3 }, { name: 'a', target: 5 }] })), ['fds[1].name', 'fds[1].target']);
});

test('limits, names and the environment are checked', () => {
  assert.deepEqual(paths(spec({ name: 'Bad_Name' })), ['name']);
  assert.deepEqual(paths(spec({ cgroup: { name: 'ok', memoryBytes: 10, pids: 0, cpu: { quotaUs: 5, periodUs: 100 } } })),
    ['cgroup.cpu.periodUs', 'cgroup.cpu.quotaUs', 'cgroup.memoryBytes', 'cgroup.pids']);
  assert.deepEqual(paths(spec({ rlimits: { nofile: 2 } })), ['rlimits.nofile']);
  assert.deepEqual(paths(spec({ env: { 'A=B': 'x' } })), ['env.A=B']);
  assert.deepEqual(paths(spec({ network: { mode: 'join', path: 'netns/x' } })), ['network.path']);
});

test('host checks: a symlinked bind source, a symlinked ancestor, a missing source, a non-device', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-jail-validate-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'real'));
  mkdirSync(join(dir, 'real', 'sub'));
  symlinkSync(join(dir, 'real'), join(dir, 'link'));
  const s = spec({
    mounts: [{ type: 'ro-bind', source: join(dir, 'link'), target: '/a' }, { type: 'ro-bind', source: join(dir, 'link', 'sub'), target: '/b' },
      { type: 'bind', source: join(dir, 'missing'), target: '/c' }, { type: 'ro-bind', source: join(dir, 'real'), target: '/d' }],
    devices: ['/dev/null'],
  });
  const issues = checkJailHost(s);
  assert.deepEqual(issues.map((i) => i.path), ['mounts[0].source', 'mounts[1].source', 'mounts[2].source']);
  assert.match(issues[0]!.message, /is a symlink/);
  assert.match(issues[1]!.message, /passes through a symlink/);
  assert.match(issues[2]!.message, /does not exist/);
  // A device entry that is a regular file (injected view) is refused too.
  const probe: HostProbe = { kind: () => 'file', realpath: (p) => p };
  assert.deepEqual(checkJailHost(spec({ mounts: [] }), probe).map((i) => i.path), ['devices[0]']);
});

test('validateJailSpec throws one JAIL_INVALID_SPEC carrying every issue', () => {
  assert.doesNotThrow(() => validateJailSpec(spec(), config));
  assert.throws(() => validateJailSpec(spec({ cwd: 'x', devices: ['/dev/sda'] }), config), (e: unknown) => {
    assert.ok(e instanceof JailError);
    assert.equal(e.code, 'JAIL_INVALID_SPEC');
    assert.deepEqual((e.context['issues'] as Array<{ path: string }>).map((i) => i.path).sort(), ['cwd', 'devices[0]', 'devices[0]']);
    assert.match(e.message, /warden-test-jail-v/);
    return true;
  });
  assert.throws(() => validateJailSpec(null as unknown as JailSpec, config), /JailSpec must be an object/);
});
