/** `warden plan` and `warden validate` end to end through the CLI: real image, real QEMU capabilities, located planner errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { run, type Io } from '../index.js';
import { gatherSpecFacts, loadSpecFile } from './spec-facts.js';

const skip = existsSync('/usr/bin/qemu-system-x86_64') && spawnSync('qemu-img', ['--version']).status === 0 ? false : 'QEMU or qemu-img missing';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('warden plan / validate on a real spec', { skip, timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-cli-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  spawnSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(dir, 'root.qcow2'), '16M']);
  const spec = join(dir, 'vm.yaml');
  writeFileSync(spec, 'apiVersion: warden/v1\nname: cli1\ndisks:\n  - { name: root, image: root.qcow2, format: qcow2 }\nnetworks:\n  - { name: n, type: user }\n');
  const common = ['--cache-dir', join(dir, 'cache'), '--state-dir', join(dir, 'state'), '--uid', '4242'];

  await t.test('validate prints a one-line summary', async () => {
    const io = capture();
    assert.equal(await run(['validate', spec, '--cache-dir', join(dir, 'cache')], io), 0, io.stderr);
    assert.match(io.stdout, /valid \(VM cli1: 1 disk\(s\), 1 network\(s\)\)/);
  });

  await t.test('plan --json has the documented shape', async () => {
    const io = capture();
    assert.equal(await run(['plan', spec, '--json', ...common], io), 0, io.stdout);
    const p = JSON.parse(io.stdout) as Record<string, unknown> & { argv: string[]; jail: { identity: { uid: number } }; fds: Array<{ path?: string }> };
    assert.deepEqual(Object.keys(p), ['argv', 'argvTrace', 'fds', 'jail', 'hostActions', 'manifest', 'helpers']);
    assert.equal(p.argv[0], '/usr/bin/qemu-system-x86_64');
    assert.equal(p.jail.identity.uid, 4242);
    assert.ok(p.fds.some((f) => f.path === join(dir, 'root.qcow2')));
    assert.ok(p.fds.some((f) => f.path === join(dir, 'state', 'vms', 'cli1', 'qmp.sock')), 'the paths start will use under this state root');
  });

  await t.test('without --state-dir, plan uses the lifecycle\'s state root ($WARDEN_STATE_DIR), as start will', async () => {
    const saved = process.env['WARDEN_STATE_DIR'];
    process.env['WARDEN_STATE_DIR'] = join(dir, 'env-root');
    try {
      const io = capture();
      assert.equal(await run(['plan', spec, '--json', '--cache-dir', join(dir, 'cache'), '--uid', '4242'], io), 0, io.stdout);
      const p = JSON.parse(io.stdout) as { fds: Array<{ path?: string }> };
      assert.ok(p.fds.some((f) => f.path === join(dir, 'env-root', 'vms', 'cli1', 'serial.sock')), io.stdout.slice(0, 2000));
    } finally {
      if (saved === undefined) delete process.env['WARDEN_STATE_DIR']; else process.env['WARDEN_STATE_DIR'] = saved;
    }
  });

  await t.test('plan (text) traces each option to its spec field', async () => {
    const io = capture();
    assert.equal(await run(['plan', spec, ...common], io), 0, io.stderr);
    assert.match(io.stdout, /-blockdev .*"node-name":"root-0-fmt".* # disks\[0\]\.image/);
    assert.match(io.stdout, /-netdev .*"type":"stream".* # networks\[0\]/);
    assert.match(io.stdout, /^Helper passt for networks\[0\]/m);
    assert.match(io.stdout, /^Jail:$/m);
  });

  await t.test('a planner error is located in the spec file and exits 2', async () => {
    const kvm = join(dir, 'kvm.yaml');
    writeFileSync(kvm, 'apiVersion: warden/v1\nname: cli2\naccel: kvm\n');
    const io = capture();
    assert.equal(await run(['plan', kvm, ...common, '--no-kvm'], io), 2);
    assert.match(io.stderr, /kvm\.yaml:3:8: accel: accel is kvm, but KVM is not usable/);
  });

  await t.test('accel auto is planned with the KVM probe\'s verdict, as start decides it; --kvm overrides', async () => {
    const argvOf = (out: string): string[] => (JSON.parse(out) as { argv: string[] }).argv;
    const io = capture();
    assert.equal(await run(['plan', spec, '--json', ...common], io), 0, io.stderr);
    const accel = argvOf(io.stdout)[argvOf(io.stdout).indexOf('-accel') + 1];
    // On these machines /dev/kvm opens but its guests do not run (docs/design.md): the probe says so.
    if (existsSync('/dev/kvm') && process.env['WARDEN_EXPECT_KVM'] !== '1') {
      assert.match(accel ?? '', /^tcg/);
      assert.match(io.stderr, /warning: KVM is not usable \(.+\): planned with TCG, as start would/);
    }
    assert.ok(existsSync(join(dir, 'state', 'cache')), 'the verdict is cached where start looks for it (the state root)');
    const forced = capture();
    assert.equal(await run(['plan', spec, '--json', ...common, '--kvm'], forced), 0, forced.stderr);
    assert.equal(argvOf(forced.stdout)[argvOf(forced.stdout).indexOf('-accel') + 1], 'kvm');
    assert.equal(forced.stderr, '');
  });

  await t.test('validate runs the planner too: a writable image shared by two disks is located', async () => {
    const shared = join(dir, 'shared.yaml');
    writeFileSync(shared, 'apiVersion: warden/v1\nname: cli3\ndisks:\n  - { name: a, image: root.qcow2, format: qcow2 }\n  - { name: b, image: ./root.qcow2, format: qcow2, readOnly: true }\n');
    const io = capture();
    assert.equal(await run(['validate', shared, '--cache-dir', join(dir, 'cache')], io), 2);
    assert.match(io.stderr, /shared\.yaml:4:23: disks\[0\]\.image: .*root\.qcow2 is opened read-write here and also used by disks\[1\]\.image/);
  });

  await t.test('gathered facts carry every capability the planner checks against', async () => {
    const { facts } = await gatherSpecFacts(await loadSpecFile(spec), { qemu: '/usr/bin/qemu-system-x86_64', stateRoot: join(dir, 'state'), cacheDir: join(dir, 'cache'), kvm: false });
    assert.equal(facts.qemu.sandbox, true);
    assert.ok(facts.qemu.deviceProps?.['virtio-blk-pci']?.includes('drive'));
    assert.ok(facts.qemu.schema !== undefined && !('cached' in facts.qemu));
    assert.equal(facts.chains['root']?.layers[0]?.path, join(dir, 'root.qcow2'));
  });

  await t.test('validate warns (exit 0) about a bridge or link this host lacks, located in the spec', async () => {
    const br = join(dir, 'br.yaml');
    writeFileSync(br, 'apiVersion: warden/v1\nname: cli4\nnetworks:\n  - { name: a, type: bridge, bridge: wqabr-nope }\n  - { name: b, type: macvtap, link: wqaln-nope }\n');
    const io = capture();
    assert.equal(await run(['validate', br, '--cache-dir', join(dir, 'cache')], io), 0, io.stderr);
    assert.match(io.stderr, /warning: .*br\.yaml:4:38: networks\[0\]\.bridge: Linux bridge wqabr-nope does not exist on this host: start would fail \(NET_BRIDGE_MISSING\)/);
    assert.match(io.stderr, /networks\[1\]\.link: link wqaln-nope does not exist/);
    const json = capture();
    assert.equal(await run(['validate', br, '--json', '--cache-dir', join(dir, 'cache')], json), 0);
    assert.deepEqual((JSON.parse(json.stdout) as { warnings: Array<{ path: string }> }).warnings.map((w) => w.path), ['networks[0].bridge', 'networks[1].link']);
  });

  await t.test('validate warns about a forwarded host port that is taken (QEMU would exit at start)', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as { port: number }).port;
      const fwd = join(dir, 'fwd.yaml');
      writeFileSync(fwd, `apiVersion: warden/v1\nname: cli5\nnetworks:\n  - name: u\n    type: user\n    forwards: [{ host: ${port}, guest: 80 }]\n`);
      const io = capture();
      assert.equal(await run(['validate', fwd, '--cache-dir', join(dir, 'cache')], io), 0, io.stderr);
      assert.match(io.stderr, new RegExp(`networks\\[0\\]\\.forwards\\[0\\]\\.host: tcp port 127\\.0\\.0\\.1:${port} cannot be bound on this host \\(EADDRINUSE\\)`));
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  await t.test('a bad --uid/--gid is a usage error naming the flag, not a spec problem', async () => {
    for (const [flag, value] of [['--uid', 'abc'], ['--gid', '-1'], ['--uid', '1.5']]) {
      const io = capture();
      assert.equal(await run(['plan', spec, '--cache-dir', join(dir, 'cache'), flag!, value!], io), 2);
      assert.match(io.stderr, new RegExp(`^error: ${flag} must be a non-negative integer, got "${value!.replace('.', '\\.')}" \\[USAGE_BAD_ID\\]`));
    }
  });

  await t.test('a missing spec file is a clean exit 2', async () => {
    const io = capture();
    assert.equal(await run(['validate', join(dir, 'nope.yaml'), '--cache-dir', join(dir, 'cache')], io), 2);
    assert.match(io.stderr, /^error: reading spec file .*nope\.yaml failed/);
  });
});
