/** Spec parsing: the issue's full example is valid, defaults are filled, values are normalised, issues are located and complete. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpecError, formatSize, parsePercent, parseSize, parseSpec, resolveSpecPaths } from './index.js';

const EXAMPLE = `apiVersion: warden/v1
name: web1
cpus: 2
memory: 1Gi
machine: q35
accel: auto
firmware: bios
boot:
  kernel: guest/vmlinuz
  initrd: guest/initrd.gz
  cmdline: console=ttyS0
disks:
  - name: root
    image: disks/root.qcow2
    format: qcow2
    bus: virtio
    readOnly: false
    cache: none
  - name: seed
    image: seed.iso
    format: raw
    media: cdrom
networks:
  - name: net0
    type: user
    forwards: [{ proto: tcp, host: 2222, guest: 22 }]
  - name: net1
    type: bridge
    bridge: br0
    mac: "52:54:00:12:34:56"
  - { name: net2, type: ovs, bridge: ovsbr0, vlan: 10 }
  - { name: net3, type: macvtap, link: eth0, mode: bridge }
serial: { log: true }
limits: { cpu: 150%, memory: 1280Mi, pids: 512 }
`;

test('the example from the issue is valid and normalised', () => {
  const s = parseSpec(EXAMPLE, 'web1.yaml');
  assert.equal(s.memory, 1024 ** 3);
  assert.equal(s.limits?.cpu, 150);
  assert.equal(s.limits?.memory, 1280 * 1024 ** 2);
  assert.equal(s.disks[1]?.readOnly, false);
  assert.equal(s.disks[0]?.cache, 'none');
  assert.equal(s.networks[0]?.forwards?.[0]?.hostAddress, '127.0.0.1');
  assert.equal(s.rng, true);
});

test('JSON specs parse too, with defaults filled', () => {
  const s = parseSpec('{"apiVersion":"warden/v1","name":"j"}', 'j.json');
  assert.deepEqual([s.cpus, s.memory, s.machine, s.accel, s.firmware, s.disks, s.networks], [1, 512 * 1024 ** 2, 'q35', 'auto', 'bios', [], []]);
});

test('relative paths resolve against the spec directory, absolute ones stay', () => {
  const s = resolveSpecPaths(parseSpec(EXAMPLE, 'web1.yaml'), '/srv/vms');
  assert.equal(s.disks[0]?.image, '/srv/vms/disks/root.qcow2');
  assert.equal(s.boot?.initrd, '/srv/vms/guest/initrd.gz');
  const t = resolveSpecPaths(parseSpec(EXAMPLE.replace('seed.iso', '/isos/../isos/seed.iso'), 'w.yaml'), '/srv');
  assert.equal(t.disks[1]?.image, '/isos/seed.iso');
});

test('every issue at once, sorted by position, with suggestions', () => {
  const bad = 'apiVersion: warden/v1\nname: x\ncpu: 2\nmemory: 1Gb\ndisks:\n  - { name: r, image: a, format: qcow }\n  - { name: r, image: b }\n';
  try { parseSpec(bad, 'b.yaml'); assert.fail('no error'); } catch (e) {
    assert.ok(e instanceof SpecError);
    assert.equal(e.code, 'SPEC_INVALID');
    const got = e.issues.map((i) => `${i.line}:${i.col} ${i.path} ${i.code}${i.suggestion === undefined ? '' : ` / ${i.suggestion}`}`);
    assert.deepEqual(got, [
      '3:1 cpu SPEC_UNKNOWN_KEY / did you mean "cpus"?',
      '4:9 memory SPEC_VALUE',
      '7:5 disks[1].format SPEC_MISSING',
      '7:13 disks[1].name SPEC_DUPLICATE',
    ]);
    assert.match(e.message, /b\.yaml:4:9: memory: "1Gb" is not a size/);
  }
});

test('an empty file and a YAML error are located, not thrown raw', () => {
  assert.throws(() => parseSpec('', 'e.yaml'), (e: unknown) => e instanceof SpecError && e.issues.some((i) => i.path === 'apiVersion'));
  assert.throws(() => parseSpec('a: [1,\n', 'y.yaml'), (e: unknown) => e instanceof SpecError && e.code === 'SPEC_SYNTAX' && e.issues[0]!.line >= 1);
  assert.throws(() => parseSpec('a: &x [*x]\n', 'alias.yaml'), SpecError);
});

test('sizes and percentages', () => {
  assert.equal(parseSize('512Mi'), 512 * 1024 * 1024);
  assert.equal(parseSize(4096), 4096);
  for (const bad of ['1GB', '1.5Gi', '-1', '0', '', 'Gi', '99999999999Ti']) assert.equal(parseSize(bad), null, bad);
  assert.equal(formatSize(1280 * 1024 * 1024), '1280Mi');
  assert.equal(parsePercent('150%'), 150);
  assert.equal(parsePercent('0%'), null);
});

test('serial.logMax: a size with a default of 8Mi, bounded to 64Ki..1Gi with the position named', () => {
  const base = 'apiVersion: warden/v1\nname: s\n';
  assert.equal(parseSpec(base, 's.yaml').serial.logMax, 8 * 1024 ** 2);
  assert.equal(parseSpec(`${base}serial: { logMax: 64Ki }\n`, 's.yaml').serial.logMax, 64 * 1024);
  for (const [v, want] of [['1Ki', /serial\.logMax: must be between 64Ki and 1Gi/], ['2Gi', /between 64Ki and 1Gi/], ['lots', /is not a size/]] as const) {
    assert.throws(() => parseSpec(`${base}serial:\n  logMax: ${v}\n`, 's.yaml'), (e: unknown) => {
      assert.ok(e instanceof SpecError);
      assert.equal(e.issues[0]?.path, 'serial.logMax');
      assert.equal(e.issues[0]?.line, 4);
      assert.match(e.message, want);
      return true;
    });
  }
});

test('type messages take the right article: "must be an object", "must be a number"', () => {
  assert.throws(() => parseSpec('- 1\n', 'l.yaml'), (e: unknown) => e instanceof SpecError && e.issues[0]!.message === 'must be an object, got [1]');
  assert.throws(() => parseSpec('apiVersion: warden/v1\nname: a\ncpus: two\n', 'c.yaml'), (e: unknown) => e instanceof SpecError && /^must be a number/.test(e.issues[0]!.message));
});
