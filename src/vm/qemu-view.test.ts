/** QEMU's minimal view, seen from outside through /proc/PID/root: its binary, libraries and the files the plan names, nothing else. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GUEST_READY_LINE } from './guest.js';
import { openManager } from './open.js';
import { leftovers, testEnv, vmName, waitForText } from './testing.js';

const root = process.getuid?.() === 0;

/** Every non-directory under `dir` (the jail's /proc, /sys and /dev are the kernel's, not the view's). */
function walk(dir: string, rel = ''): Array<{ path: string; mode: number; symlink: boolean }> {
  const out: Array<{ path: string; mode: number; symlink: boolean }> = [];
  for (const name of readdirSync(join(dir, rel))) {
    const r = `${rel}/${name}`;
    if (rel === '' && ['/proc', '/sys', '/dev'].includes(r)) continue;
    const st = lstatSync(join(dir, r));
    if (st.isDirectory()) out.push(...walk(dir, r));
    else out.push({ path: r, mode: st.mode, symlink: st.isSymbolicLink() });
  }
  return out;
}

test('QEMU\'s view holds its binary, its libraries and the planned data files: no shell, no other program, a few hundred files at most', { timeout: 120_000 }, async (t) => {
  if (!root) return t.skip('needs root: the jailer switches uids');
  const env = testEnv('warden-view-');
  const m = openManager({ stateDir: env.stateRoot });
  const name = vmName('wdv-view');
  t.after(async () => { await m.kill(name).catch(() => undefined); env.cleanup(); });
  await m.create(env.specFile({ name, networks: [{ name: 'net0', type: 'user' }] }));
  await m.start(name);
  await waitForText(m.store.paths(name).serialLog, GUEST_READY_LINE, 60_000);
  const rec = await m.reconcile(name, true);
  const jailRoot = `/proc/${rec.run!.qemu.pid}/root`;

  const files = walk(jailRoot);
  assert.ok(files.length <= 300, `${files.length} files in QEMU's view`);
  const programs = files.filter((f) => !f.symlink && (f.mode & 0o111) !== 0 && !/\.so(\.[0-9.]+)?$/.test(f.path)).map((f) => f.path).sort();
  // The jailer's static exec helper stays bound at /.warden-exec (it execs QEMU); nothing else runs.
  assert.deepEqual(programs, ['/.warden-exec', '/usr/bin/qemu-system-x86_64']);
  const names = new Set(files.map((f) => f.path.split('/').pop()));
  for (const shell of ['sh', 'bash', 'dash', 'busybox', 'env', 'ldd']) assert.ok(!names.has(shell), `no ${shell} in the view`);
  assert.deepEqual(readdirSync(join(jailRoot, 'usr')).sort(), ['bin', 'lib', 'lib64', 'share']);
  assert.deepEqual(readdirSync(join(jailRoot, 'usr/bin')), ['qemu-system-x86_64']);

  // Each bound file is in the manifest with its reason, and the planned data files are there.
  const plan = JSON.parse(readFileSync(join(m.store.paths(name).dir, 'plan.json'), 'utf8')) as { manifest: Array<{ kind: string; resource: string; note?: string }> };
  const mounted = new Set(plan.manifest.filter((e) => e.kind === 'mount').map((e) => e.resource));
  for (const f of ['/usr/share/seabios/bios-256k.bin', '/usr/share/qemu/kvmvapic.bin', '/usr/share/qemu/linuxboot_dma.bin', '/usr/lib/ipxe/qemu/efi-virtio.rom', '/usr/lib/x86_64-linux-gnu/libc.so.6']) {
    assert.ok(files.some((x) => x.path === f), `${f} is in the view`);
    assert.ok(mounted.has(f), `${f} is in the manifest`);
  }
  for (const f of files) if (!f.symlink && f.path.startsWith('/usr/')) assert.ok(mounted.has(f.path), `${f.path} is in the view but not in the manifest`);

  await m.stop(name);
  assert.deepEqual(leftovers(name, env.stateRoot), []);
});
