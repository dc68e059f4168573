/** Golden tests for the pure generators: JailSpec → helper/setpriv/bwrap argv, and mounts + limits → cgroup steps. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildJailArgv, checkJailSpec, defaultJailerConfig, missingControllers, parseCgroupLayout, planCgroup, probeJailHost, type JailSpec } from '../../src/jail/index.js';
import { cgroupJoins } from '../../src/jail/launch.js';
import { assertGolden, readCase } from './golden.js';

const config = defaultJailerConfig({ uidRange: { first: 231072, count: 128 }, allowedGroups: [993] });

for (const name of ['qemu-like', 'join-netns', 'host-minimal', 'busybox']) {
  test(`argv golden: ${name}`, () => {
    const spec = JSON.parse(readCase(name, 'spec.json')) as JailSpec;
    assert.deepEqual(checkJailSpec(spec, config), [], 'the case itself is a valid spec');
    const ids = 'uid' in spec.identity ? spec.identity : { uid: 231072, gid: 231072 };
    const argv = buildJailArgv(spec, {
      uid: ids.uid, gid: ids.gid, groups: 'groups' in spec.identity ? spec.identity.groups ?? [] : [],
      helperPath: '/opt/warden/warden-exec', setprivPath: '/usr/bin/setpriv', bwrapPath: '/usr/bin/bwrap',
      cgroupProcs: spec.cgroup === undefined ? [] : [`/sys/fs/cgroup/memory/warden/${spec.cgroup.name}/cgroup.procs`],
      statusFd: 3 + spec.fds.length, gateFd: 4 + spec.fds.length, stderrFd: 5 + spec.fds.length, landlockRequired: name === 'qemu-like',
    });
    assertGolden(name, 'argv.txt', `${argv.join('\n')}\n`);
    // Invariants the golden review relies on.
    assert.ok(argv.includes('--no-new-privs') && argv.includes('--bounding-set=-all') && argv.includes('--cap-drop'));
    assert.equal(argv.indexOf('--new-session') > 0, true);
    assert.equal(argv.includes('--unshare-net'), spec.network.mode === 'none');
  });
}

const DEVICES = [{ path: '/dev/null', kind: 'c' as const, major: 1, minor: 3 }, { path: '/dev/kvm', kind: 'c' as const, major: 10, minor: 232 }];
const CG = { name: 'vm-web-1', cpu: { quotaUs: 150000, periodUs: 100000 }, memoryBytes: 1 << 30, pids: 256 };

for (const [name, controllers] of [['cgroup-v1', 'hugetlb'], ['cgroup-v2', 'cpuset cpu io memory hugetlb pids rdma misc']] as const) {
  test(`cgroup plan golden: ${name}`, () => {
    const layout = parseCgroupLayout(readCase(name, 'mounts'), () => controllers.split(' '));
    assert.ok(layout !== undefined);
    const plan = planCgroup(layout, 'warden', CG, DEVICES);
    const lines = plan.steps.map((s) => s.op === 'mkdir' ? `mkdir${s.parents ? ' -p' : ''} ${s.path}` : `write ${s.path} ${JSON.stringify(s.value)}${s.ifExists === true ? ' (if present)' : ''}`);
    assertGolden(name, 'plan.txt', `# version ${plan.version}\n# leaves: ${plan.leaves.join(' ')}\n${lines.join('\n')}\n`);
  });
}

test('layout detection: hybrid v1 wins over a controller-less v2; none at all is undefined', () => {
  const hybrid = parseCgroupLayout(readCase('cgroup-v1', 'mounts'), () => ['hugetlb']);
  assert.equal(hybrid?.version, 1);
  assert.deepEqual(hybrid?.version === 1 ? hybrid.mounts : {}, {
    cpu: '/sys/fs/cgroup/cpu,cpuacct', memory: '/sys/fs/cgroup/memory', devices: '/sys/fs/cgroup/devices', pids: '/sys/fs/cgroup/pids',
  });
  assert.equal(parseCgroupLayout('proc /proc proc rw 0 0\n', () => []), undefined);
  const forced = parseCgroupLayout(readCase('cgroup-v1', 'mounts'), () => ['hugetlb'], 2);
  assert.deepEqual(forced, { version: 2, mount: '/sys/fs/cgroup/unified', controllers: ['hugetlb'] });
  assert.equal(parseCgroupLayout(readCase('cgroup-v2', 'mounts'), () => ['memory', 'pids'], 1), undefined, 'no v1 hierarchies to force');
});

test('limits whose controller is missing are named, on v1 and v2', () => {
  const cg = { name: 'x', cpu: { quotaUs: 1000, periodUs: 1000 }, memoryBytes: 1 << 20, pids: 1 };
  assert.deepEqual(missingControllers({ version: 1, mounts: { memory: '/m' } }, cg), ['cpu', 'pids']);
  assert.deepEqual(missingControllers({ version: 2, mount: '/u', controllers: ['hugetlb'] }, cg), ['cpu', 'memory', 'pids']);
  assert.deepEqual(missingControllers({ version: 2, mount: '/u', controllers: ['hugetlb'] }, { name: 'x' }), []);
});

test('probeJailHost reports this host: cgroup version, Landlock ABI, and a missing tool as a problem', async () => {
  const report = await probeJailHost(config);
  assert.equal(report.root, process.getuid?.() === 0);
  assert.ok(report.cgroupVersion === 1 || report.cgroupVersion === 2);
  assert.ok(Number.isInteger(report.landlockAbi) && report.landlockAbi >= 0);
  const broken = await probeJailHost(defaultJailerConfig({ bwrapPath: '/nonexistent/bwrap', landlockRequired: true }));
  assert.ok(broken.problems.some((p) => p.includes('/nonexistent/bwrap')));
});

test('cgroup joins: on v1 the helper writes "0" to each leaf\'s tasks file (no threadgroup lock), on v2 its pid to cgroup.procs', () => {
  const v1 = planCgroup({ version: 1, mounts: { cpu: '/c', memory: '/m' } }, 'warden', { name: 'j' }, []);
  assert.deepEqual(cgroupJoins(v1), { cgroupProcs: [], cgroupTasks: ['/c/warden/j/tasks', '/m/warden/j/tasks'] });
  const v2 = planCgroup({ version: 2, mount: '/u', controllers: ['memory', 'pids'] }, 'warden', { name: 'j' }, []);
  assert.deepEqual(cgroupJoins(v2), { cgroupProcs: ['/u/warden/j/cgroup.procs'] });
  const argv = buildJailArgv(JSON.parse(readCase('busybox', 'spec.json')) as JailSpec, {
    uid: 231072, gid: 231072, groups: [], helperPath: '/h', setprivPath: '/s', bwrapPath: '/b', ...cgroupJoins(v1), statusFd: 3, gateFd: 4, stderrFd: 5, landlockRequired: false,
  });
  assert.deepEqual(argv.slice(0, argv.indexOf('--')), ['/h', 'pre', '--cgroup-tasks', '/c/warden/j/tasks', '--cgroup-tasks', '/m/warden/j/tasks']);
});
