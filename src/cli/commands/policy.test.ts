/** The image policy through the CLI (issue 18): crafted headers are refused at validate and at start with exit 3, the refused names are never opened (strace), no QEMU holds them; a spec that allows a shared base directory boots. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { run, type Io } from '../index.js';
import { GUEST_READY_LINE, ensureTestGuest, leftovers, repoRoot, waitForText } from '../../vm/index.js';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out(t: string) { io.stdout += `${t}\n`; }, err(t: string) { io.stderr += `${t}\n`; } };
  return io;
}

/** Processes (other than this one) holding `path` open. */
function holders(path: string): number[] {
  const out: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(p) || Number(p) === process.pid) continue;
    let fds: string[] = [];
    try { fds = readdirSync(`/proc/${p}/fd`); } catch { continue; }
    if (fds.some((fd) => { try { return readlinkSync(`/proc/${p}/fd/${fd}`) === path; } catch { return false; } })) out.push(Number(p));
  }
  return out;
}

const img = (dir: string, ...args: string[]): void => { execFileSync('qemu-img', ['create', '-q', ...args], { cwd: dir }); };

/** A 0700 dir with img/ (crafted images, one per case) and secret/victim (root-only). Returns the cases: disk image → the name it must not open. */
function crafted(root: string): { victim: string; cases: Array<{ tag: string; image: string; format: string; refused: string; code: string }> } {
  const dir = join(root, 'img');
  mkdirSync(dir, { mode: 0o700 });
  mkdirSync(join(root, 'secret'), { mode: 0o700 });
  const victim = join(root, 'secret', 'victim');
  writeFileSync(victim, 'SECRET\n', { mode: 0o600 });
  img(dir, '-f', 'raw', 'd.raw', '1M');
  img(dir, '-f', 'qcow2', '-o', `data_file=${join(dir, 'd.raw')},data_file_raw=on`, 'data.qcow2', '1M');
  execFileSync('qemu-img', ['amend', '-o', `data_file=${victim}`, join(dir, 'data.qcow2')]);
  img(dir, '-f', 'qcow2', '-u', '-b', victim, '-F', 'raw', 'backing.qcow2', '1M');
  img(dir, '-f', 'vmdk', '-o', 'subformat=monolithicFlat', 'extent.vmdk', '1M');
  writeFileSync(join(dir, 'extent.vmdk'), readFileSync(join(dir, 'extent.vmdk'), 'latin1').replace('"extent-flat.vmdk"', `"${victim}"`), 'latin1');
  execFileSync('mknod', [join(dir, 'blk'), 'b', '7', '0']);
  img(dir, '-f', 'qcow2', '-u', '-b', 'blk', '-F', 'raw', 'block.qcow2', '1M');
  execFileSync('mknod', [join(dir, 'chr'), 'c', '1', '5']);
  img(dir, '-f', 'qcow2', '-u', '-b', 'chr', '-F', 'raw', 'char.qcow2', '1M');
  img(dir, '-f', 'qcow2', '-u', '-b', '/dev/tty1', '-F', 'raw', 'tty.qcow2', '1M');
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  img(dir, '-f', 'qcow2', '-u', '-b', 'fifo', '-F', 'raw', 'fifo.qcow2', '1M');
  symlinkSync(victim, join(dir, 'link.raw'));
  img(dir, '-f', 'qcow2', '-u', '-b', 'link.raw', '-F', 'raw', 'symlink.qcow2', '1M');
  const c = (tag: string, image: string, format: string, refused: string, code: string) => ({ tag, image: join(dir, image), format, refused, code });
  return { victim, cases: [
    c('data', 'data.qcow2', 'qcow2', victim, 'IMAGE_OUTSIDE_ALLOWED_DIRS'),
    c('backing', 'backing.qcow2', 'qcow2', victim, 'IMAGE_OUTSIDE_ALLOWED_DIRS'),
    c('extent', 'extent.vmdk', 'vmdk', victim, 'IMAGE_OUTSIDE_ALLOWED_DIRS'),
    c('block', 'block.qcow2', 'qcow2', join(dir, 'blk'), 'IMAGE_DEVICE_REFUSED'),
    c('char', 'char.qcow2', 'qcow2', join(dir, 'chr'), 'IMAGE_DEVICE_REFUSED'),
    c('tty', 'tty.qcow2', 'qcow2', '/dev/tty1', 'IMAGE_OUTSIDE_ALLOWED_DIRS'),
    c('fifo', 'fifo.qcow2', 'qcow2', join(dir, 'fifo'), 'IMAGE_DEVICE_REFUSED'),
    c('symlink', 'symlink.qcow2', 'qcow2', victim, 'IMAGE_OUTSIDE_ALLOWED_DIRS'),
  ] };
}

function specText(name: string, disks: Array<{ name: string; image: string; format: string; extra?: string }>): string {
  const g = ensureTestGuest();
  return [
    'apiVersion: warden/v1', `name: ${name}`, 'memory: 128Mi', 'accel: tcg',
    `boot: { kernel: ${g.kernel}, initrd: ${g.initrd}, cmdline: "${g.cmdline}" }`,
    'disks:', ...disks.map((d) => `  - { name: ${d.name}, image: ${d.image}, format: ${d.format}${d.extra ?? ''} }`), '',
  ].join('\n');
}

test('crafted headers (data file, backing file, VMDK extent, block/char devices, FIFO, symlink) are refused at validate and start with exit 3, never opened', { timeout: 120_000 }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'warden-policy-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const { victim, cases } = crafted(root);
  const state = join(root, 'state');

  // validate: one spec with every crafted disk reports each refusal, located, and exits 3.
  const all = join(root, 'all.yaml');
  writeFileSync(all, specText(`wpol-all-${process.pid}`, cases.map((c) => ({ name: c.tag, image: c.image, format: c.format }))));
  let io = capture();
  assert.equal(await run(['validate', all], io), 3, io.stderr);
  cases.forEach((c, i) => {
    const line = io.stderr.split('\n').find((l) => l.includes(`disks[${i}].image:`)) ?? '';
    assert.ok(line.includes(c.refused) && line.includes('it was not opened'), `${c.tag}: ${line}`);
    assert.ok(line.includes(c.image), `${c.tag}: the overlay is named: ${line}`);
  });

  // strace: the prober never opens (not even O_PATH) a refused name; it only resolves it (realpath, lstat).
  const log = join(root, 'strace.log');
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=open,openat,openat2,creat', '-o', log, join(repoRoot(), 'bin', 'warden'), 'validate', all], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 3, r.stderr);
  const opens = readFileSync(log, 'utf8');
  // openat2 opens beneath the allowed directory's fd, so names appear relative: match the last component in any form.
  const opened = (path: string): string[] => opens.split('\n').filter((l) => l.includes(`"${path}"`) || l.includes(`/${basename(path)}"`) || l.includes(`"${basename(path)}"`));
  assert.ok(opened(cases[0]!.image).length > 0, `strace saw the top images opened:\n${opens.slice(0, 2000)}`);
  for (const c of cases) assert.deepEqual(opened(c.refused), [], `${c.tag}: ${c.refused} was opened`);

  // start: each case on its own VM refuses in the probe step with exit 3; no QEMU ever holds the file.
  for (const c of cases) {
    const name = `wpol-${c.tag}-${process.pid}`;
    const file = join(root, `${c.tag}.yaml`);
    writeFileSync(file, specText(name, [{ name: 'root', image: c.image, format: c.format }]));
    assert.equal(await run(['create', file, '--state-dir', state], io = capture()), 0, io.stderr);
    assert.equal(await run(['start', name, '--state-dir', state, '--json'], io = capture()), 3, `${c.tag}: ${io.stdout}${io.stderr}`);
    const err = (JSON.parse(io.stdout) as { error: { code: string; layer: string } }).error;
    assert.equal(err.code, c.code, c.tag);
    assert.deepEqual(holders(c.refused), [], `${c.tag}: nobody holds ${c.refused}`);
    assert.deepEqual(leftovers(name, state), [], c.tag);
    assert.equal(await run(['delete', name, '--state-dir', state], io = capture()), 0, io.stderr);
  }
  assert.deepEqual(holders(victim), []);
});

test('a spec that allows a shared base directory (disks[].allowDirs) validates and boots; QEMU gets the base read-only, the checked inode', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root: the jailer switches uids and creates cgroups');
  const root = mkdtempSync(join(tmpdir(), 'warden-policy-'));
  const state = join(root, 'state');
  const name = `wpol-shared-${process.pid}`;
  t.after(async () => { await run(['kill', name, '--state-dir', state], capture()); rmSync(root, { recursive: true, force: true }); });
  mkdirSync(join(root, 'shared'), { mode: 0o700 });
  mkdirSync(join(root, 'vm'), { mode: 0o700 });
  const base = join(root, 'shared', 'base.qcow2');
  img(root, '-f', 'qcow2', base, '64M');
  img(root, '-f', 'qcow2', '-b', base, '-F', 'qcow2', join(root, 'vm', 'disk.qcow2'));
  const file = join(root, 'vm', 'vm.yaml');
  writeFileSync(file, specText(name, [{ name: 'root', image: 'disk.qcow2', format: 'qcow2' }]));
  let io = capture();
  assert.equal(await run(['validate', file], io), 3, 'without allowDirs the shared base is refused');
  assert.match(io.stderr, /backing file .*shared\/base\.qcow2 .*lies outside the places this chain may lead/);
  writeFileSync(file, specText(name, [{ name: 'root', image: 'disk.qcow2', format: 'qcow2', extra: ', allowDirs: [../shared]' }]));
  assert.equal(await run(['validate', file], io = capture()), 0, io.stderr);
  assert.equal(await run(['create', file, '--state-dir', state], io = capture()), 0, io.stderr);
  assert.equal(await run(['start', name, '--state-dir', state], io = capture()), 0, io.stderr);
  await waitForText(join(state, 'vms', name, 'serial.log'), GUEST_READY_LINE, 90_000);
  const qemu = holders(base);
  assert.equal(qemu.length, 1, 'QEMU holds the base');
  const fd = readdirSync(`/proc/${qemu[0]}/fd`).find((f) => { try { return readlinkSync(`/proc/${qemu[0]}/fd/${f}`) === base; } catch { return false; } })!;
  const flags = Number.parseInt(/flags:\s+(\d+)/.exec(readFileSync(`/proc/${qemu[0]}/fdinfo/${fd}`, 'utf8'))![1]!, 8);
  assert.equal(flags & 3, 0, 'the base layer is O_RDONLY');
  assert.equal(await run(['kill', name, '--state-dir', state], io = capture()), 0, io.stderr);
  assert.equal(await run(['delete', name, '--state-dir', state], io = capture()), 0, io.stderr);
  assert.deepEqual(leftovers(name, state), []);
});
