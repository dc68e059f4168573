/** The lifecycle verbs through the CLI: exit statuses, --json shapes, the console over its socket, logs. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../index.js';
import { GUEST_READY_LINE, leftovers, repoRoot, testEnv, waitForText } from '../../vm/index.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('a VM name that cannot be one is a usage error (exit 2), for every verb that takes a name', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-review-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const argv of [['start', '../etc'], ['inspect', 'Bad Name'], ['delete', 'x'.repeat(64)]]) {
    const io = capture();
    assert.equal(await run([...argv, '--state-dir', dir], io), 2, `${argv.join(' ')}: ${io.stderr}`);
    assert.match(io.stderr, /is not valid/);
  }
});

test('create and run of a spec file that cannot be read: SPEC_READ, exit 2, as validate says it; nothing recorded', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const argv of [['create', join(dir, 'nope.yaml')], ['run', '-d', join(dir, 'nope.yaml')], ['validate', join(dir, 'nope.yaml')]]) {
    const io = capture();
    assert.equal(await run([...argv, ...(argv[0] === 'validate' ? [] : ['--state-dir', dir])], io), 2, `${argv.join(' ')}: ${io.stderr}`);
    assert.match(io.stderr, /^error: reading spec file .*nope\.yaml failed \[SPEC_READ\]/);
    assert.match(io.stderr, /hint: check the path/);
  }
  const io = capture();
  assert.equal(await run(['list', '--json', '--state-dir', dir], io), 0);
  assert.deepEqual(JSON.parse(io.stdout), []);
});

test('every lifecycle verb takes --json: errors come out as {error} JSON with their exit status; bad QMP arguments are a usage error', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const verb of ['start', 'stop', 'kill', 'pause', 'resume', 'restart', 'delete', 'inspect']) {
    const io = capture();
    assert.equal(await run([verb, 'wqa-nope', '--json', '--state-dir', dir], io), 5, `${verb}: ${io.stdout}${io.stderr}`);
    assert.equal((JSON.parse(io.stdout) as { error: { code: string } }).error.code, 'VM_NOT_FOUND', verb);
  }
  let io = capture();
  for (const t of ['', 'abc', '-1']) {
    assert.equal(await run(['stop', 'wqa-nope', '--timeout', t, '--state-dir', dir], io = capture()), 2, `--timeout ${JSON.stringify(t)}`);
    assert.match(io.stderr, /--timeout must be a number of seconds/);
  }
  assert.equal(await run(['qmp', 'wqa-nope', 'query-block', '[1]', '--state-dir', dir], io = capture()), 2);
  assert.match(io.stderr, /the QMP arguments must be one JSON object, got: \[1\]/);
  assert.equal(await run(['qmp', 'wqa-nope', 'query-status', '--json', '--state-dir', dir], io = capture()), 5, io.stdout);
  assert.equal(await run(['pause', '--json', '--state-dir', dir], io = capture()), 2, 'a missing argument');
  assert.deepEqual((JSON.parse(io.stdout) as { error: { code: string; message: string } }).error.code, 'USAGE_ARGS');
  assert.equal(await run(['run', join(dir, 'x.yaml'), '--json', '--state-dir', dir], io = capture()), 2);
  assert.match(io.stdout, /run --json needs --detach/);
});

test('logs: a VM that never started says so; the rotated older part (serial.log.1) comes first', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = join(dir, 'vm.yaml');
  writeFileSync(spec, 'apiVersion: warden/v1\nname: wqa-logs\n');
  let io = capture();
  assert.equal(await run(['create', spec, '--state-dir', dir], io), 0, io.stderr);
  assert.equal(await run(['logs', 'wqa-logs', '--state-dir', dir], io = capture()), 0);
  assert.match(io.stderr, /VM wqa-logs has no serial console output: it has never been started/);
  const vmDir = join(dir, 'vms', 'wqa-logs');
  writeFileSync(join(vmDir, 'serial.log.1'), 'older\n');
  writeFileSync(join(vmDir, 'serial.log'), 'newer\n');
  assert.equal(await run(['logs', 'wqa-logs', '--json', '--state-dir', dir], io = capture()), 0);
  const chunks = io.stdout.trim().split('\n').map((l) => JSON.parse(l) as { offset: number; text: string });
  assert.deepEqual(chunks.map((c) => [c.offset, c.text]), [[0, 'older\n'], [6, 'newer\n']]);
  assert.equal(io.stderr, '');
});

test('list: a VM whose record is unreadable is listed as such (with its error) instead of failing the whole list', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const spec = join(dir, 'vm.yaml');
  writeFileSync(spec, 'apiVersion: warden/v1\nname: wqa-good\n');
  let io = capture();
  assert.equal(await run(['create', spec, '--state-dir', dir], io), 0, io.stderr);
  mkdirSync(join(dir, 'vms', 'wqa-bad'));
  writeFileSync(join(dir, 'vms', 'wqa-bad', 'vm.json'), '{bad');
  assert.equal(await run(['list', '--json', '--state-dir', dir], io = capture()), 0, io.stdout);
  const rows = JSON.parse(io.stdout) as Array<{ name: string; phase: string; error?: { code: string } }>;
  assert.deepEqual(rows.map((r) => [r.name, r.phase, r.error?.code]), [['wqa-bad', 'unreadable', 'VM_STATE_CORRUPT'], ['wqa-good', 'created', undefined]]);
  assert.match(io.stderr, /warning: the state file of VM wqa-bad is not a valid record \[VM_STATE_CORRUPT\]/);
});

test('start of a VM whose kernel is gone names boot.kernel and leaves nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'wqa-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'vmlinuz'), 'x');
  const spec = join(dir, 'vm.yaml');
  writeFileSync(spec, 'apiVersion: warden/v1\nname: wqa-nokernel\naccel: tcg\nboot: { kernel: vmlinuz }\n');
  let io = capture();
  assert.equal(await run(['create', spec, '--state-dir', dir], io), 0, io.stderr);
  rmSync(join(dir, 'vmlinuz'));
  assert.equal(await run(['start', 'wqa-nokernel', '--state-dir', dir], io = capture()), 1);
  assert.match(io.stderr, new RegExp(`error: boot\\.kernel of VM wqa-nokernel: ${join(dir, 'vmlinuz')} does not exist \\[VM_START_FAILED\\]`));
  assert.match(io.stderr, /FAIL gathering host facts/);
  assert.deepEqual(leftovers('wqa-nokernel', dir), []);
});

test('warden lifecycle verbs: exit statuses, JSON, console, logs, stop of a paused guest', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const env = testEnv('warden-vm-cli-');
  const sd = ['--state-dir', env.stateRoot];
  const name = `wdv-cli-${process.pid}`; // VM names are host-wide (cgroups, uid leases): one per process
  t.after(async () => { await run(['kill', name, ...sd], capture()); env.cleanup(); });
  const spec = env.specFile({ name });

  let io = capture();
  assert.equal(await run(['inspect', 'wdv-nope', ...sd], io), 5, 'not found is exit 5');
  assert.match(io.stderr, /VM wdv-nope does not exist/);
  assert.equal(await run(['run', spec, '--detach', ...sd], io = capture()), 0, io.stderr);
  assert.match(io.stderr, /ok +starting the vCPUs/);
  assert.match(io.stderr, new RegExp(`VM ${name} is running \\(\\d`));
  assert.equal(await run(['create', spec, ...sd], io = capture()), 4, 'an existing name is exit 4');
  assert.equal(await run(['start', name, ...sd], io = capture()), 4, 'starting a running VM is exit 4');
  assert.ok(io.stderr.includes(`cannot start VM ${name}: it is running`), io.stderr);
  assert.match(io.stderr, /hint: stop it first/);
  assert.equal(await run(['delete', name, ...sd], io = capture()), 4);

  assert.equal(await run(['list', '--json', ...sd], io = capture()), 0);
  const rows = JSON.parse(io.stdout) as Array<{ name: string; phase: string; pid: number; uid: number }>;
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.phase, 'running');
  assert.ok(rows[0]!.uid > 0);
  assert.equal(await run(['inspect', name, '--json', ...sd], io = capture()), 0);
  const insp = JSON.parse(io.stdout) as { process: { seccomp: number; noNewPrivs: boolean }; plan: { argv: string[] } };
  assert.equal(insp.process.seccomp, 2);
  assert.ok(insp.plan.argv.includes('-S'));

  // The console: a command typed into the guest's shell answers on the socket.
  await waitForText(join(env.stateRoot, 'vms', name, 'serial.log'), GUEST_READY_LINE, 60_000);
  const con = spawn(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'bin.js'), 'console', name, ...sd], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  con.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  con.stdin.write('echo warden-$((6*7))\n');
  const deadline = Date.now() + 20_000;
  while (!out.includes('warden-42') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  // QEMU would leave a second client connected but unheard: it is refused instead.
  assert.equal(await run(['console', name, ...sd], io = capture()), 4);
  assert.match(io.stderr, new RegExp(`the console of VM ${name} is already attached \\(process ${con.pid}\\)`));
  con.stdin.write(Buffer.from([0x1d]));
  const guard = setTimeout(() => con.kill('SIGKILL'), 10_000);
  const code = await new Promise<number | null>((r) => con.on('exit', r));
  clearTimeout(guard);
  assert.ok(out.includes('warden-42'), `the shell answered on the console: ${out}`);
  assert.equal(code, 0, 'Ctrl-] detaches with status 0');
  assert.equal(await run(['qmp', name, 'query-status', ...sd], io = capture()), 0, 'the VM still runs after detaching');
  assert.equal((JSON.parse(io.stdout) as { status: string }).status, 'running');

  // restart: a graceful stop, then a new QEMU process.
  assert.equal(await run(['inspect', name, '--json', ...sd], io = capture()), 0);
  const pidBefore = (JSON.parse(io.stdout) as { run: { qemu: { pid: number } } }).run.qemu.pid;
  assert.equal(await run(['restart', name, ...sd], io = capture()), 0, io.stderr);
  assert.match(io.stderr, /guest powered off \(ACPI\)/);
  assert.equal(await run(['inspect', name, '--json', ...sd], io = capture()), 0);
  const restarted = JSON.parse(io.stdout) as { phase: string; run: { qemu: { pid: number } } };
  assert.equal(restarted.phase, 'running');
  assert.notEqual(restarted.run.qemu.pid, pidBefore, 'a new QEMU process');

  // A paused guest cannot answer the power button: stop quits QEMU at once instead of waiting out the timeout.
  assert.equal(await run(['pause', name, '--json', ...sd], io = capture()), 0);
  assert.equal((JSON.parse(io.stdout) as { phase: string }).phase, 'paused');
  assert.equal(await run(['stop', name, '--timeout', '60', ...sd], io = capture()), 0, io.stderr);
  assert.match(io.stderr, new RegExp(`VM ${name} is paused, so its guest cannot answer the ACPI power button: quitting QEMU`));
  assert.doesNotMatch(io.stderr, /did not power off/);
  // A guest that does not power off in time: quit after the timeout.
  assert.equal(await run(['start', name, ...sd], io = capture()), 0, io.stderr);
  assert.equal(await run(['stop', name, '--timeout', '0', ...sd], io = capture()), 0, io.stderr);
  assert.match(io.stderr, /did not power off within 0 s: quitting QEMU/);
  assert.equal(await run(['inspect', name, '--json', ...sd], io = capture()), 0);
  const after = JSON.parse(io.stdout) as { phase: string; lastExit: { reason: string } };
  assert.deepEqual([after.phase, after.lastExit.reason], ['stopped', 'stopped']);
  assert.equal(await run(['logs', name, ...sd], io = capture()), 0);
  assert.equal(await run(['logs', name, '--json', ...sd], io = capture()), 0);
  const chunks = io.stdout.trim().split('\n').map((l) => JSON.parse(l) as { vm: string; offset: number; text: string });
  assert.equal(chunks[0]?.vm, name);
  assert.match(chunks.map((c) => c.text).join(''), /WARDEN-GUEST-READY/, 'the serial log as JSON lines');
  assert.deepEqual(leftovers(name, env.stateRoot), []);
  assert.equal(await run(['delete', name, '--json', ...sd], io = capture()), 0);
  assert.deepEqual(JSON.parse(io.stdout), { deleted: name });
  assert.equal(await run(['list', ...sd], io = capture()), 0);
  assert.match(io.stdout, /no VMs/);
});
