/** Capabilities from the real QEMU binary, the per-binary cache, and the QAPI checker against the real schema. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, promises as fsp, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NodeFs, NodeProcessRunner, type ProcessRunner } from '../sys/index.js';
import { cacheFile, checkCommandArgs as checkFull, indexSchema, loadQemuCaps, plannerSchema, probeQemu, QemuProbeError, type QapiIndex } from './index.js';

const QEMU = '/usr/bin/qemu-system-x86_64';
const skip = existsSync(QEMU) ? false : 'qemu-system-x86_64 is not installed';

test('probe and cache: a second load is served from the cache, a changed binary is probed again', { skip, timeout: 240_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/warden-plan-caps-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let probes = 0;
  const real = new NodeProcessRunner();
  const runner: ProcessRunner = { run: (argv, o) => { if (argv.includes('-qmp')) probes++; return real.run(argv, o); } };
  let mtimeShift = 0;
  const src = { runner, fs: new NodeFs(), cacheDir: join(dir, 'c'), stat: async (p: string) => { const s = await fsp.stat(p); return { size: s.size, mtimeMs: s.mtimeMs + mtimeShift }; } };
  const first = await loadQemuCaps(src, QEMU);
  assert.equal(first.cached, false);
  assert.equal(first.version.major >= 7, true);
  assert.ok(first.machines.some((m) => m.alias === 'q35'));
  assert.ok(first.devices.includes('virtio-blk-pci'));
  assert.ok(first.schema!.some((e) => e.name === 'blockdev-add'));
  const second = await loadQemuCaps(src, QEMU);
  assert.equal(second.cached, true);
  assert.deepEqual(second.devices, first.devices);
  assert.equal(probes, 1);
  // The cache keeps the planner's part of the QAPI schema; an entry with the whole schema (an older warden's) is cut down once.
  const whole = (await probeQemu(real, QEMU)).schema!;
  assert.deepEqual(first.schema, plannerSchema(whole));
  const st0 = await fsp.stat(QEMU);
  const entry = cacheFile(src.cacheDir, QEMU, { size: st0.size, mtimeMs: st0.mtimeMs });
  const { cached: _c, ...stored } = first;
  writeFileSync(entry, JSON.stringify({ ...stored, schema: whole }));
  const older = await loadQemuCaps(src, QEMU);
  assert.equal(older.cached, true);
  assert.deepEqual(older.schema, first.schema);
  assert.deepEqual(JSON.parse(readFileSync(entry, 'utf8')), stored);
  assert.equal(probes, 1);
  mtimeShift = 1000; // as if the binary was upgraded in place
  assert.equal((await loadQemuCaps(src, QEMU)).cached, false);
  assert.equal(probes, 2);
  // A torn cache file is re-probed, not trusted.
  const st = await fsp.stat(QEMU);
  writeFileSync(cacheFile(src.cacheDir, QEMU, { size: st.size, mtimeMs: st.mtimeMs + mtimeShift }), '{"binary":');
  assert.equal((await loadQemuCaps(src, QEMU)).cached, false);
});

test('a probe whose reader is slow still gets every answer (QEMU exits on quit without flushing its monitor)', { skip, timeout: 120_000 }, async () => {
  const probe = probeQemu(new NodeProcessRunner(), QEMU);
  // Keep this process from reading QEMU's stdout for a while, as a loaded host does: the
  // schema's 186 KB outgrow the pipe and wait in QEMU's monitor buffer. A quit sent with the
  // queries made QEMU exit with those replies unsent ("answered 5 of 23").
  setTimeout(() => { const until = Date.now() + 1500; while (Date.now() < until); }, 5);
  const caps = await probe;
  assert.ok(caps.schema!.some((e) => e.name === 'blockdev-add'));
  assert.equal(Object.keys(caps.deviceProps!).length > 10, true);
  assert.equal(typeof caps.sandbox, 'boolean');
});

test('a cache directory that cannot be written costs a probe, not the caller', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync('/tmp/wqa-qemu-caps-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), '');
  const src = { runner: new NodeProcessRunner(), fs: new NodeFs(), cacheDir: join(dir, 'file', 'cache'), stat: async (p: string) => { const s = await fsp.stat(p); return { size: s.size, mtimeMs: s.mtimeMs }; } };
  const caps = await loadQemuCaps(src, QEMU);
  assert.equal(caps.cached, false);
  assert.ok(caps.devices.includes('virtio-blk-pci'));
});

test('a missing binary and a binary that is not QEMU give typed host errors', async () => {
  const runner = new NodeProcessRunner();
  await assert.rejects(probeQemu(runner, '/nonexistent/qemu'), (e: unknown) => e instanceof QemuProbeError && e.code === 'HOST_QEMU_MISSING');
  await assert.rejects(probeQemu(runner, '/bin/true'), (e: unknown) => e instanceof QemuProbeError && e.code === 'HOST_QEMU_PROBE');
});

test('QAPI checks against the real schema: unions, enums, alternates, required members', { skip, timeout: 30_000 }, async () => {
  const caps = await probeQemu(new NodeProcessRunner(), QEMU);
  const ix = indexSchema(caps.schema!);
  // What the capability cache keeps answers every check as the whole schema does.
  const reduced = indexSchema(plannerSchema(caps.schema!));
  assert.ok(reduced.size < ix.size / 2, `${reduced.size} of ${ix.size} entries`);
  const checkCommandArgs = (i: QapiIndex, command: string, value: unknown): string[] | null => {
    const full = checkFull(i, command, value);
    assert.deepEqual(checkFull(reduced, command, value), full, `${command} ${JSON.stringify(value)}`);
    return full;
  };
  const ok = { driver: 'qcow2', 'node-name': 'a', file: 'f', backing: null, 'read-only': true, cache: { direct: false } };
  assert.deepEqual(checkCommandArgs(ix, 'blockdev-add', ok), []);
  assert.deepEqual(checkCommandArgs(ix, 'blockdev-add', { ...ok, backing: 'b' }), []);
  assert.match(checkCommandArgs(ix, 'blockdev-add', { ...ok, driver: 'raw' })!.join(), /backing: not a member/);
  assert.match(checkCommandArgs(ix, 'blockdev-add', { ...ok, driver: 'qcow5' })!.join(), /driver: "qcow5" is not one of/);
  assert.match(checkCommandArgs(ix, 'blockdev-add', { ...ok, backing: 5 })!.join(), /fits none of the alternatives/);
  assert.match(checkCommandArgs(ix, 'blockdev-add', { driver: 'file', 'node-name': 'x' })!.join(), /filename: required member missing/);
  assert.match(checkCommandArgs(ix, 'blockdev-add', { ...ok, cache: { direct: 'yes' } })!.join(), /cache.direct: expected boolean/);
  assert.deepEqual(checkCommandArgs(ix, 'netdev_add', { type: 'tap', id: 'n', fds: '3:4', vhost: true, vhostfds: '5:6' }), []);
  assert.deepEqual(checkCommandArgs(ix, 'object-add', { 'qom-type': 'rng-builtin', id: 'r' }), []);
  assert.equal(checkCommandArgs(ix, 'no-such-command', {}), null);
});
