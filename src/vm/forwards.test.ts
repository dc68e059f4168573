/** `host: 0` forwards: a free port chosen at start, bound by QEMU, in the run record, inspect, list --json and sshEndpoint. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { run, type Io } from '../cli/index.js';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { chooseForwardPorts } from './facts.js';
import { sshEndpoint } from './endpoints.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

test('sshEndpoint: a tcp forward to guest port 22 first (wildcard via loopback), else a bridged address from the agent', () => {
  const fwd = (hostAddress: string, host: number, guest: number) => ({ network: 'u', proto: 'tcp' as const, hostAddress, host, guest });
  assert.deepEqual(sshEndpoint({ run: { forwards: [fwd('127.0.0.1', 8080, 80), fwd('0.0.0.0', 40022, 22)] } as never }), { host: '127.0.0.1', port: 40022, via: 'forward' });
  const agent = [{ address: '127.0.0.1', family: 'ipv4' as const }, { address: '10.0.2.15', family: 'ipv4' as const }, { nic: 'eth1', address: '192.168.50.7', family: 'ipv4' as const }];
  assert.deepEqual(sshEndpoint({ run: { forwards: [fwd('127.0.0.1', 8080, 80)] } as never }, agent), { host: '192.168.50.7', port: 22, via: 'guest-agent' });
  assert.equal(sshEndpoint({}, agent.slice(0, 2)), null, 'loopback and slirp addresses are not reachable from the host');
});

test('chooseForwardPorts: one distinct free port per host: 0 forward, by spec path; fixed ports untouched', async () => {
  const ports = await chooseForwardPorts({ networks: [
    { type: 'user', forwards: [{ proto: 'tcp', host: 0, guest: 22, hostAddress: '127.0.0.1' }, { proto: 'tcp', host: 18080, guest: 80, hostAddress: '127.0.0.1' }, { proto: 'udp', host: 0, guest: 53, hostAddress: '127.0.0.1' }] },
  ] } as never);
  assert.deepEqual(Object.keys(ports), ['networks[0].forwards[0]', 'networks[0].forwards[2]']);
  for (const p of Object.values(ports)) assert.ok(p > 0 && p < 65536);
});

/** The tcp ports QEMU listens on, seen from outside: its socket fds matched against /proc/PID/net/tcp. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set(readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })
    .flatMap((l) => /^socket:\[(\d+)\]$/.exec(l)?.[1] ?? []));
  return readFileSync(`/proc/${pid}/net/tcp`, 'utf8').split('\n').slice(1).map((l) => l.trim().split(/\s+/))
    .filter((f) => f[3] === '0A' && inodes.has(f[9]!)).map((f) => Number.parseInt(f[1]!.split(':')[1]!, 16));
}

test('host: 0 gets a free port at start: passt listens on it, the run record, inspect, list --json and sshEndpoint name it', {
  skip: process.getuid?.() !== 0 ? 'needs root: the jailer switches uids' : false, timeout: 120_000,
}, async (t) => {
  const env = testEnv('warden-fwd-');
  const m = openManager({ stateDir: env.stateRoot });
  t.after(async () => { for (const n of await m.store.list()) await m.kill(n).catch(() => undefined); env.cleanup(); });
  const name = vmName('wdv-fwd');
  await m.create(env.specFile({ name, networks: [{ name: 'u', type: 'user', forwards: [{ host: 0, guest: 22 }] }] }));
  const started = await m.start(name);
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
  const f = started.record.run?.forwards?.[0];
  assert.ok(f !== undefined && f.host > 0, `a chosen port in the run record: ${JSON.stringify(started.record.run?.forwards)}`);
  // User networking is passt's (its own jail): passt listens, QEMU has no host network at all.
  assert.deepEqual(listeningPorts(started.record.helpers![0]!.proc.pid), [f.host], 'passt listens on exactly the recorded port');
  await new Promise<void>((res, rej) => { const s = connect(f.host, '127.0.0.1', () => { s.destroy(); res(); }); s.once('error', rej); });
  assert.deepEqual(sshEndpoint(started.record), { host: '127.0.0.1', port: f.host, via: 'forward' });
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { helpers: Array<{ jail: { argv: string[] } }> };
  assert.ok(plan.helpers[0]!.jail.argv.includes(`127.0.0.1/${f.host}:22`), 'start planned passt with the chosen port');

  let io = capture();
  assert.equal(await run(['inspect', name, '--state-dir', env.stateRoot], io), 0, io.stderr);
  assert.match(io.stdout, new RegExp(`forward: tcp 127\\.0\\.0\\.1:${f.host} -> guest port 22 \\(u\\)`));
  io = capture();
  assert.equal(await run(['list', '--json', '--state-dir', env.stateRoot], io), 0, io.stderr);
  const row = (JSON.parse(io.stdout) as Array<{ name: string; forwards: Array<{ host: number; guest: number }> | null }>).find((r) => r.name === name);
  assert.deepEqual(row?.forwards?.map((x) => [x.host, x.guest]), [[f.host, 22]]);
  io = capture();
  assert.equal(await run(['plan', env.specFile({ name, networks: [{ name: 'u', type: 'user', forwards: [{ host: 0, guest: 22 }] }] }), '--state-dir', env.stateRoot], io), 0, io.stderr);
  assert.match(io.stdout, /tcp\/127\.0\.0\.1:0 .*a free one chosen at start/, 'plan shows the policy, not a port');

  await m.kill(name);
  await m.delete(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
