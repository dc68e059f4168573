/**
 * @module vm/demo: `warden demo` (npm run demo): builds the test guest if needed, boots it
 * jailed with a qcow2 overlay over a base image and user networking (passt), shows its serial
 * console, its web page through a forward, and what confines it, then stops it cleanly and removes everything.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followLog } from './console.js';
import { ensureTestGuest, GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { formatInspection, formatTable, inspectRecord, summarize } from './view.js';
import { VmError } from './errors.js';
import { sshEndpoint } from './endpoints.js';
import type { VmRecord } from './record.js';

export interface DemoIo {
  out(text: string): void;
  err(text: string): void;
}

function qemuImg(args: string[]): void {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new VmError('VM_IO', `qemu-img ${args.join(' ')} failed`, { context: { stderr: r.stderr } });
}

function demoSpec(dir: string, kernel: string, initrd: string): string {
  const file = join(dir, 'demo.yaml');
  writeFileSync(file, [
    'apiVersion: warden/v1',
    'name: warden-demo',
    'memory: 256Mi',
    'accel: auto',
    'boot:',
    `  kernel: ${kernel}`,
    `  initrd: ${initrd}`,
    '  cmdline: console=ttyS0 quiet panic=-1 warden.ip=10.0.2.15/24 warden.gw=10.0.2.2 warden.http=8080',
    'disks:',
    '  - name: root',
    '    image: overlay.qcow2   # a qcow2 overlay over base.qcow2',
    '    format: qcow2',
    'networks:',
    '  - name: net0',
    '    type: user',
    '    forwards: [{ proto: tcp, host: 0, guest: 8080 }]   # host: 0 = a free port chosen at start',
    '',
  ].join('\n'));
  return file;
}

/** Prints the serial log as it grows until `marker` shows up (or the deadline passes). */
async function showConsoleUntil(path: string, io: DemoIo, marker: string, timeoutMs: number, offset: number, aborted: () => boolean): Promise<{ found: boolean; offset: number; seen: string }> {
  let seen = '';
  const deadline = Date.now() + timeoutMs;
  const out = { write: (b: Buffer | string): boolean => {
    const text = b.toString().replace(/\x1b\[[0-9;]*[a-zA-Z]/g, '');
    seen += text;
    for (const line of text.split('\n')) if (line.trim() !== '') io.out(`  | ${line.trimEnd()}`);
    return true;
  } } as unknown as NodeJS.WritableStream;
  const end = await followLog(path, out, { follow: true, offset, until: async () => seen.includes(marker) || Date.now() > deadline || aborted() });
  if (aborted()) throw new VmError('VM_TIMEOUT', 'the demo was interrupted');
  return { found: seen.includes(marker), offset: end, seen };
}

/** The guest's web page fetched from the host through its user-network forward (served by passt in its own jail). */
async function showGuestWeb(io: DemoIo, rec: VmRecord): Promise<void> {
  const end = sshEndpoint(rec, [], 8080);
  if (end === null) { io.err('  (the forward to the guest\'s port 8080 is not recorded)'); return; }
  const url = `http://${end.host}:${end.port}/`;
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 250))) {
    try {
      const body = (await (await fetch(url, { signal: AbortSignal.timeout(2000) })).text()).trim().split('\n')[0] ?? '';
      io.out(`the guest's web page through the forward ${url} (host: 0 chose the port): ${body}`);
      return;
    } catch { /* the guest's server may not listen yet */ }
  }
  io.err(`  (no answer from the guest at ${url} within 15 s)`);
}

export async function runDemo(io: DemoIo, o: { stateDir?: string; keep?: boolean } = {}): Promise<void> {
  io.err('warden demo: building the test guest (cached in .cache/guest)');
  const guest = ensureTestGuest(undefined, false);
  const dir = mkdtempSync(join(tmpdir(), 'warden-demo-'));
  const m = openManager({ stateDir: o.stateDir ?? join(dir, 'state'), progress: { err: (t) => io.err(t) } });
  // Ctrl-C: fall through to the cleanup below instead of leaving the demo VM running.
  let interrupted = false;
  const onSigint = (): void => { interrupted = true; io.err('interrupted: stopping the demo VM'); };
  process.once('SIGINT', onSigint);
  try {
    qemuImg(['create', '-q', '-f', 'qcow2', join(dir, 'base.qcow2'), '64M']);
    qemuImg(['create', '-q', '-f', 'qcow2', '-b', join(dir, 'base.qcow2'), '-F', 'qcow2', join(dir, 'overlay.qcow2')]);
    const file = demoSpec(dir, guest.kernel, guest.initrd);
    io.out(`spec ${file}: a 256 MiB VM, the test guest's kernel, a qcow2 overlay disk, user networking`);
    const rec = await m.create(file);
    await m.start(rec.name);
    io.out('serial console:');
    const ready = await showConsoleUntil(m.store.paths(rec.name).serialLog, io, GUEST_READY_LINE, 90_000, 0, () => interrupted);
    if (!ready.found) throw new VmError('VM_TIMEOUT', `the demo guest did not print ${GUEST_READY_LINE} within 90 s`, { context: { serialLog: m.store.paths(rec.name).serialLog } });
    await showGuestWeb(io, await m.reconcile(rec.name));
    io.out('');
    io.out(formatInspection(await inspectRecord(m.fs, m.store, await m.reconcile(rec.name, true))));
    io.out('');
    io.out(`QMP query-status: ${JSON.stringify(await m.qmp(rec.name, 'query-status'))}`);
    await m.stop(rec.name, { timeoutS: 30 });
    io.out(formatTable([summarize(await m.reconcile(rec.name))]));
    if (!o.keep) await m.delete(rec.name);
  } finally {
    process.removeListener('SIGINT', onSigint);
    for (const n of await m.store.list().catch(() => [])) {
      const r = await m.reconcile(n).catch(() => null);
      if (r !== null && (r.phase === 'running' || r.phase === 'paused')) await m.kill(n).catch(() => undefined);
    }
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
    else io.err(`kept ${dir}`);
  }
}
