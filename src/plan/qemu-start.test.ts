/**
 * The planned argv started for real: real images from qemu-img, fds opened exactly as
 * planned (unjailed), QEMU with TCG and -S; QMP query-named-block-nodes must show every
 * planned node with its driver and read-only flag, and the chain depth as planned.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { constants, closeSync, existsSync, mkdtempSync, openSync, promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { NodeFs, NodeProcessRunner, loadNative } from '../sys/index.js';
import { defaultJailerConfig, launchJail, teardownJail } from '../jail/index.js';
import { loadQemuCaps, type QemuCaps } from '../qemu/index.js';
import { parseSpec, resolveSpecPaths } from '../spec/index.js';
import { walkChain } from '../image/index.js';
import { buildPlan, type Plan } from './index.js';
import { sketchFacts, type LayerSketch } from './testing.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const skip = !existsSync(QEMU) || spawnSync('qemu-img', ['--version']).status !== 0 ? 'qemu-system-x86_64 or qemu-img missing' : false;

function img(...args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img ${args.join(' ')}: ${r.stderr}`);
}

/** The oracle: qemu-img's own view of the chain, turned into layer facts. */
function chainOf(path: string): LayerSketch[] {
  const r = spawnSync('qemu-img', ['info', '--output=json', '--backing-chain', '-U', path], { encoding: 'utf8' });
  const infos = JSON.parse(r.stdout) as Array<{ filename: string; format: string; 'format-specific'?: { data?: { 'data-file'?: string } } }>;
  return infos.map((i) => {
    const df = i['format-specific']?.data?.['data-file'];
    return { path: i.filename, format: i.format as LayerSketch['format'], ...(df === undefined ? {} : { dataFile: df, dataFilePath: df }) };
  });
}

const FLAG: Record<string, number> = { O_RDONLY: constants.O_RDONLY, O_WRONLY: constants.O_WRONLY, O_RDWR: constants.O_RDWR, O_DIRECT: constants.O_DIRECT, O_CREAT: constants.O_CREAT, O_APPEND: constants.O_APPEND };

/** Opens every planned fd; returns them in plan order plus a cleanup. */
async function openPlanned(plan: Plan): Promise<{ fds: number[]; close: () => void }> {
  const fds: number[] = [];
  const servers: net.Server[] = [];
  const taps: Record<number, number[]> = {};
  const pairEnds: number[] = [];
  for (const f of plan.fds) {
    if (f.kind === 'file') fds.push(openSync(f.path, f.flags.reduce((a, x) => a | FLAG[x]!, 0), 0o600));
    // QEMU needs only a write-only fd for a log: a file stands in for the log writer's pipe here.
    else if (f.kind === 'log') fds.push(openSync(f.path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600));
    // As the manager does it (vm/boot-fds): a sealed memfd copy QEMU reads as /proc/self/fd/N.
    else if (f.kind === 'sealed-copy') fds.push(loadNative().memfdSealed(f.name, readFileSync(f.path)));
    else if (f.kind === 'unix-listen') {
      // Node unlinks a socket path when its server closes: listen on a temporary name, rename it into place.
      const s = net.createServer();
      await new Promise<void>((res) => s.listen(`${f.path}.tmp`, res));
      await fsp.rename(`${f.path}.tmp`, f.path);
      servers.push(s);
      fds.push((s as unknown as { _handle: { fd: number } })._handle.fd);
    } else if (f.kind === 'socketpair') {
      // The helper's end is not started here: QEMU only needs a connected stream socket.
      const [mine, theirs] = loadNative().socketpair();
      fds.push(mine);
      pairEnds.push(theirs);
    } else if (f.kind === 'host-action') {
      const a = plan.hostActions[f.action];
      assert.ok(a?.kind === 'tap', `only tap actions are performed here, not ${a?.kind}`);
      // The TAP is opened here under this test's own name (the planned ifname matters only to src/net);
      // it is not persistent, so it vanishes once QEMU and this process close its fds.
      const name = `wplan${process.pid % 10000}t${f.action}`;
      taps[f.action] ??= loadNative().openTap(name, a.queues, a.vnetHdr).fds;
      const fd = taps[f.action]!.shift();
      assert.ok(fd !== undefined);
      fds.push(fd);
    } else assert.fail(`QEMU is never handed a ${f.kind} fd (helpers are)`);
  }
  return { fds, close: () => { for (const s of servers) s.close(); for (const [i, f] of plan.fds.entries()) if (f.kind !== 'unix-listen') closeSync(fds[i]!); for (const e of pairEnds) closeSync(e); } };
}

/** A few QMP commands over the planned monitor socket, one reply per command. */
type Cmd = string | { execute: string; arguments: Record<string, unknown> };

async function qmp(path: string, commands: Cmd[]): Promise<unknown[]> {
  const sock = net.connect(path);
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  let wake: () => void = () => {};
  sock.on('data', (d) => {
    buf += d.toString();
    let k;
    while ((k = buf.indexOf('\n')) >= 0) { lines.push(JSON.parse(buf.slice(0, k)) as Record<string, unknown>); buf = buf.slice(k + 1); }
    wake();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const i = lines.findIndex((l) => 'QMP' in l || 'return' in l || 'error' in l);
      if (i >= 0) return lines.splice(i, 1)[0]!;
      await new Promise<void>((res) => { wake = res; });
    }
  };
  await next();
  const out: unknown[] = [];
  for (const c of ['qmp_capabilities', ...commands]) {
    sock.write(`${JSON.stringify(typeof c === 'string' ? { execute: c } : c)}\n`);
    const r = await next();
    assert.ok(!('error' in r), `${c}: ${JSON.stringify(r)}`);
    out.push(r['return']);
  }
  sock.destroy();
  return out.slice(1);
}

/** A started QEMU: `early` rejects if it exits; `done` waits for its end and cleans up. */
interface Started { early: Promise<never>; done: () => Promise<void>; pid?: number }

async function startPlanned(t: TestContext, plan: Plan): Promise<Started> {
  const { fds, close } = await openPlanned(plan);
  const child = spawn(plan.argv[0]!, plan.argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe', ...fds] });
  let stderr = '';
  child.stderr!.on('data', (d) => { stderr += d.toString(); });
  t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  close(); // QEMU holds its own copies now, like after the jailer's exec.
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  child.on('exit', () => clearTimeout(timer));
  const early = new Promise<never>((_, rej) => child.on('exit', (c, s) => rej(new Error(`QEMU exited (${c ?? s}): ${stderr}`))));
  early.catch(() => {});
  return { early, done: () => new Promise((r) => (child.exitCode === null ? child.on('exit', () => r()) : r())) };
}

/**
 * Test uids for jailed runs (a slice no other suite uses); jail names carry the pid, so two
 * checkouts running this suite at once do not meet in the shared cgroup parent.
 */
const JAIL_UIDS = { first: 233100, count: 16 };

/** The same plan run through the real jailer: its JailSpec, its fds by name, as the lifecycle will. */
async function startJailed(t: TestContext, plan: Plan, dir: string): Promise<Started> {
  const config = defaultJailerConfig({ stateDir: join(dir, 'jail-state'), runtimeDir: join(dir, 'jail-run'), uidRange: JAIL_UIDS });
  const { fds, close } = await openPlanned(plan);
  const byName = new Map(plan.fds.map((f, i) => [f.name, fds[i]!]));
  const errFile = join(dir, `${plan.jail.name}.stderr`);
  const errFd = openSync(errFile, 'w');
  t.after(async () => { await teardownJail(plan.jail.name, config); });
  let handle;
  try { handle = await launchJail(plan.jail, { fds: byName, config, stdio: { stderr: errFd } }); } finally { closeSync(errFd); close(); }
  const h = handle;
  const timer = setTimeout(() => h.kill('SIGKILL'), 90_000);
  const early = h.wait({ pollMs: 20 }).then((e): never => { throw new Error(`jailed QEMU exited (${JSON.stringify(e)}): ${readFileSync(errFile, 'utf8')}`); });
  early.catch(() => {});
  return { early, pid: h.pid, done: async () => { await h.wait({ pollMs: 20 }); clearTimeout(timer); await teardownJail(plan.jail.name, config); } };
}

/**
 * /proc/PID/cmdline once the exec has set it up. The jailer's gate closes at the exec's
 * point of no return, a moment before the kernel writes the new argv: read too early, the
 * file is empty. The deadline only bounds a hang.
 */
async function execdCmdline(pid: number): Promise<string> {
  let cmdline = '';
  for (const deadline = Date.now() + 30_000; cmdline === '' && Date.now() < deadline;) {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline === '') await new Promise((r) => setTimeout(r, 10));
  }
  return cmdline;
}

/** Lets OVMF run: its boot manager writes to the serial console, which QEMU logs into the fdset file. */
async function expectFirmwareOnSerialLog(early: Promise<never>, qmpPath: string, log: string): Promise<void> {
  await Promise.race([early, qmp(qmpPath, ['cont'])]);
  // OVMF under TCG takes a few seconds alone, many more on a loaded 2-core host: the
  // deadline (wall time, not a count of polls) only bounds a hang.
  const limitS = 120;
  for (const deadline = Date.now() + limitS * 1000; Date.now() < deadline;) {
    if (readFileSync(log, 'utf8').includes('BdsDxe')) return;
    await Promise.race([early, new Promise((r) => setTimeout(r, 100))]);
  }
  if (readFileSync(log, 'utf8').includes('BdsDxe')) return;
  assert.fail(`no firmware output in ${log} after ${limitS} s: ${JSON.stringify(readFileSync(log, 'utf8').slice(0, 200))}`);
}

/**
 * A header-only Linux boot-protocol image: enough for QEMU to accept -kernel/-initrd/-append
 * and load them (the guest never runs: the VM stays at -S).
 */
function stubBzImage(): Buffer {
  const b = Buffer.alloc(8192);
  b[0x1f1] = 1; // setup_sects
  b.writeUInt16LE(0xaa55, 0x1fe);
  b.write('HdrS', 0x202, 'latin1');
  b.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  b[0x211] = 0x01; // loadflags: LOADED_HIGH
  b.writeUInt32LE(0x37ffffff, 0x22c); // initrd_addr_max
  b.writeUInt32LE(2048, 0x238); // cmdline_size
  return b;
}

function plannedBlockdevs(plan: Plan): Array<Record<string, unknown>> {
  return plan.argv.flatMap((a, i) => (plan.argv[i - 1] === '-blockdev' ? [JSON.parse(a) as Record<string, unknown>] : []));
}

async function runCase(t: TestContext, caps: QemuCaps, dir: string, yaml: string, chains: Record<string, string>, extra: Parameters<typeof sketchFacts>[2] = {}, jailed = false): Promise<Plan> {
  const spec = resolveSpecPaths(parseSpec(yaml, 'inline.yaml'), dir);
  const facts = sketchFacts(spec.name, caps, extra, dir);
  // The real fact path: the image module's bounded prober walks each chain; qemu-img is the oracle for it.
  for (const d of spec.disks) {
    const chain = await walkChain(d.image, { format: d.format });
    assert.deepEqual(chain.layers.map((l) => [l.path, l.format]), chainOf(join(dir, chains[d.name]!)).map((l) => [l.path, l.format]), `chain of ${d.name}`);
    facts.chains[d.name] = chain;
  }
  await fsp.mkdir(facts.paths.stateDir, { recursive: true });
  if (spec.firmware === 'uefi') await fsp.copyFile(facts.firmware!.uefiVarsTemplate, facts.paths.uefiVars);
  const plan = buildPlan(spec, facts);
  const { early, done, pid } = jailed ? await startJailed(t, plan, dir) : await startPlanned(t, plan);
  if (pid !== undefined && 'uid' in facts.identity) {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${facts.identity.uid}\\s`, 'm'), 'QEMU runs as the planned uid');
    assert.match(status, /^CapEff:\s+0+$/m, 'QEMU has no capabilities');
    assert.equal((await execdCmdline(pid)).split('\0')[0], plan.argv[0]);
  }
  await Promise.race([early, new Promise((r) => setTimeout(r, 50))]);
  for (let i = 0; !existsSync(facts.paths.qmpSocket) && i < 50; i++) await new Promise((r) => setTimeout(r, 20));
  const peripheral = { execute: 'qom-list', arguments: { path: '/machine/peripheral' } };
  const [nodes, status, devs] = await Promise.race([early, qmp(facts.paths.qmpSocket, ['query-named-block-nodes', 'query-status', peripheral])]) as [Array<Record<string, unknown>>, { status: string }, Array<{ name: string }>];
  assert.equal(status.status, 'prelaunch');
  const ids = new Set(devs.map((d) => d.name));
  for (const [i, a] of plan.argv.entries()) {
    if (plan.argv[i - 1] !== '-device') continue;
    const id = (JSON.parse(a) as { id: string }).id;
    assert.ok(ids.has(id), `planned device ${id} not in QEMU's /machine/peripheral (${[...ids].join(' ')})`);
  }
  t.diagnostic(`QEMU reports ${nodes.length} named block nodes: ${nodes.map((n) => String(n['node-name'])).join(' ')}`);
  const byName = new Map(nodes.map((n) => [n['node-name'] as string, n]));
  for (const bd of plannedBlockdevs(plan)) {
    const n = byName.get(bd['node-name'] as string);
    assert.ok(n !== undefined, `node ${String(bd['node-name'])} missing in QEMU`);
    assert.equal(n['drv'], bd['driver'], `driver of ${String(bd['node-name'])}`);
    assert.equal(n['ro'], bd['read-only'], `read-only of ${String(bd['node-name'])}`);
  }
  for (const d of spec.disks) {
    const top = byName.get(`${d.name}-0-fmt`)!;
    assert.equal(top['backing_file_depth'], facts.chains[d.name]!.layers.length - 1, `chain depth of ${d.name}`);
  }
  if (spec.firmware === 'uefi') await expectFirmwareOnSerialLog(early, facts.paths.qmpSocket, facts.paths.serialLog);
  await Promise.race([early, qmp(facts.paths.qmpSocket, ['quit'])]).catch(() => {});
  await done();
  assert.ok(existsSync(facts.paths.serialLog), 'serial log created through the fdset');
  return plan;
}

test('planned argv starts for real and shows the planned chains', { skip, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caps = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: join(dir, 'cache') }, QEMU);
  img('create', '-q', '-f', 'raw', join(dir, 'base.raw'), '16M');
  img('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', join(dir, 'mid.qcow2'));
  img('create', '-q', '-f', 'qcow2', '-b', 'mid.qcow2', '-F', 'qcow2', join(dir, 'top.qcow2'));
  img('create', '-q', '-f', 'raw', join(dir, 'seed.iso'), '1M');
  img('create', '-q', '-f', 'qcow2', join(dir, 'scsi.qcow2'), '8M');
  img('create', '-q', '-f', 'qed', join(dir, 'old.qed'), '8M');
  img('create', '-q', '-f', 'qcow2', '-o', `data_file=${join(dir, 'ext.data')}`, join(dir, 'ext.qcow2'), '8M');
  img('create', '-q', '-f', 'qcow2', '-b', 'old.qed', '-F', 'qed', join(dir, 'over-qed.qcow2'));
  writeFileSync(join(dir, 'bzImage'), stubBzImage());
  writeFileSync(join(dir, 'initrd'), Buffer.alloc(4096));

  await t.test('q35: 3-layer chain, cdrom on sata, scsi disk, user net, rng, balloon, vnc, guest agent, direct kernel boot', async (t) => {
    await runCase(t, caps, dir, `apiVersion: warden/v1
name: real1
memory: 128Mi
accel: tcg
boot: { kernel: bzImage, initrd: initrd, cmdline: console=ttyS0 }
disks:
  - { name: root, image: top.qcow2, format: qcow2 }
  - { name: seed, image: seed.iso, format: raw, media: cdrom }
  - { name: data, image: scsi.qcow2, format: qcow2, bus: scsi, readOnly: true }
networks:
  - { name: net0, type: user }
  - { name: off, type: none }
balloon: true
vnc: true
guestAgent: true
`, { root: 'top.qcow2', seed: 'seed.iso', data: 'scsi.qcow2' });
  });

  await t.test('pc + uefi, qcow2 with a data file, qed under qcow2, cache none, sata on pc', async (t) => {
    await runCase(t, caps, dir, `apiVersion: warden/v1
name: real2
machine: pc
firmware: uefi
memory: 128Mi
accel: tcg
disks:
  - { name: ext, image: ext.qcow2, format: qcow2, cache: none, discard: true }
  - { name: mixed, image: over-qed.qcow2, format: qcow2, bus: sata }
  - { name: cd, image: seed.iso, format: raw, media: cdrom, bus: scsi }
`, { ext: 'ext.qcow2', mixed: 'over-qed.qcow2', cd: 'seed.iso' });
  });
});

test('secureBoot: the secure-boot OVMF with enrolled vars, SMM and secure pflash start and print their boot manager', {
  skip: skip || (existsSync('/usr/share/OVMF/OVMF_CODE_4M.secboot.fd') && existsSync('/usr/share/OVMF/OVMF_VARS_4M.ms.fd') ? false : 'no secure-boot OVMF (package ovmf)'), timeout: 300_000,
}, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caps = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: join(dir, 'cache') }, QEMU);
  img('create', '-q', '-f', 'qcow2', join(dir, 'root.qcow2'), '16M');
  const plan = await runCase(t, caps, dir, `apiVersion: warden/v1
name: real-sb
firmware: uefi
secureBoot: true
memory: 128Mi
accel: tcg
disks:
  - { name: root, image: root.qcow2, format: qcow2, bootIndex: 0 }
`, { root: 'root.qcow2' }, { firmware: { uefiCode: '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', uefiVarsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.ms.fd', secureBoot: true } });
  assert.ok(plan.argv.some((a) => a.includes('smm=on')));
});

test('planned TAP networking (fd= and multiqueue fds=) is accepted by QEMU', { skip: skip || (process.getuid?.() !== 0 ? 'needs root for TAP devices' : false) || (existsSync('/dev/net/tun') ? false : 'no /dev/net/tun'), timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caps = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: join(dir, 'cache') }, QEMU);
  await runCase(t, caps, dir, `apiVersion: warden/v1
name: real3
memory: 128Mi
accel: tcg
networks:
  - { name: mq, type: bridge, bridge: br0, queues: 2 }
  - { name: plain, type: ovs, bridge: ovsbr0, model: e1000e }
`, {});
});

test('a planned VM runs inside the real jail: planned uid, empty or host netns, fds by name, UEFI output in the log', {
  skip: skip || (process.getuid?.() !== 0 ? 'the jailer needs root' : false) || (existsSync('/usr/bin/bwrap') ? false : 'bwrap missing'), timeout: 300_000,
}, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const caps = await loadQemuCaps({ runner: new NodeProcessRunner(), fs: new NodeFs(), stat: (p) => fsp.stat(p), cacheDir: join(dir, 'cache') }, QEMU);
  img('create', '-q', '-f', 'raw', join(dir, 'base.raw'), '16M');
  img('create', '-q', '-f', 'qcow2', '-b', 'base.raw', '-F', 'raw', join(dir, 'top.qcow2'));
  img('create', '-q', '-f', 'raw', join(dir, 'seed.iso'), '1M');
  const identity = { uid: JAIL_UIDS.first + 1, gid: JAIL_UIDS.first + 1 };
  await t.test('no NIC: empty network namespace, uefi, chain, cdrom', async (t) => {
    const plan = await runCase(t, caps, dir, `apiVersion: warden/v1
name: warden-plan-${process.pid}-j1
memory: 128Mi
accel: tcg
firmware: uefi
limits: { memory: 512Mi, pids: 256 }
disks:
  - { name: root, image: top.qcow2, format: qcow2 }
  - { name: seed, image: seed.iso, format: raw, media: cdrom }
`, { root: 'top.qcow2', seed: 'seed.iso' }, { identity }, true);
    assert.deepEqual(plan.jail.network, { mode: 'none' });
  });
  await t.test('slirp user networking (backend: slirp): host network namespace', async (t) => {
    const plan = await runCase(t, caps, dir, `apiVersion: warden/v1
name: warden-plan-${process.pid}-j2
memory: 128Mi
accel: tcg
networks: [{ name: n, type: user, backend: slirp }]
`, {}, { identity }, true);
    assert.deepEqual(plan.jail.network, { mode: 'host' });
  });
});
