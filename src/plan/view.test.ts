/** QEMU's minimal view as planned: the files each spec field brings in, a missing ROM as an issue, and the /usr fallback said aloud. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseSpec } from '../spec/index.js';
import { parseDataDirs, parseLdd, type QemuCaps } from '../qemu/index.js';
import { PlanError, buildPlan } from './index.js';
import { sketchFacts } from './testing.js';

const QEMU = JSON.parse(readFileSync(new URL('../../../test/golden/plan/_facts/qemu-7.2.json', import.meta.url), 'utf8')) as QemuCaps;

function plan(yaml: string, qemu: QemuCaps = QEMU) {
  const spec = parseSpec(`apiVersion: warden/v1\nname: t\naccel: tcg\n${yaml}`, 't.yaml');
  return buildPlan(spec, sketchFacts(spec.name, qemu));
}

const bound = (p: ReturnType<typeof plan>): string[] => p.jail.mounts.flatMap((m) => (m.type === 'ro-bind' ? [m.target] : []));

test('each spec field brings in only its own files: NIC ROMs, the VGA BIOS and keymap, the kernel loader', () => {
  const bare = bound(plan('firmware: uefi\n'));
  assert.ok(!bare.some((t) => t.endsWith('.rom') || t.includes('seabios') || t.includes('keymaps')), bare.join(' '));
  assert.ok(bare.includes('/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so'), 'TCG needs its module');
  const full = plan(`vnc: true
boot: { kernel: /k }
networks: [{ name: a, type: bridge, bridge: br0 }, { name: b, type: bridge, bridge: br0, model: e1000e }]
`);
  for (const f of ['/usr/lib/ipxe/qemu/efi-virtio.rom', '/usr/lib/ipxe/qemu/efi-e1000e.rom', '/usr/share/seabios/vgabios-stdvga.bin', '/usr/share/qemu/keymaps/en-us', '/usr/share/qemu/linuxboot_dma.bin', '/usr/share/seabios/bios-256k.bin']) {
    assert.ok(bound(full).includes(f), `${f} is bound`);
  }
  assert.deepEqual(full.manifest.find((e) => e.resource === '/usr/lib/ipxe/qemu/efi-e1000e.rom')?.from, 'networks[1]');
  // The kernel arrives as a sealed memfd (by fd), so it is neither bound nor in Landlock's list.
  assert.deepEqual(full.jail.landlock?.readOnly, ['/usr']);
  assert.ok(!bound(full).includes('/k'), 'boot files are never bound into the view');
});

test('a ROM the host lacks is a plan issue naming the spec field; no view facts means all of /usr, said in the manifest', () => {
  const noRom: QemuCaps = { ...QEMU, view: { ...QEMU.view!, dataFiles: Object.fromEntries(Object.entries(QEMU.view!.dataFiles).filter(([k]) => k !== 'efi-rtl8139.rom')) } };
  assert.throws(() => plan('networks: [{ name: a, type: bridge, bridge: br0, model: rtl8139 }]\n', noRom),
    (e: unknown) => e instanceof PlanError && e.issues.some((i) => i.code === 'PLAN_MISSING_FACT' && i.from === 'networks[0]' && /efi-rtl8139\.rom/.test(i.message)));
  const { view: _v, ...noView } = QEMU;
  const p = plan('', noView);
  assert.ok(p.jail.mounts.some((m) => m.type === 'ro-bind' && m.source === '/usr'));
  assert.ok(p.manifest.some((e) => e.resource === '/usr' && /no view facts/.test(e.note ?? '')));
});

test('ldd and -L help output are read as the loader and QEMU print them', () => {
  const ldd = parseLdd(`\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f01)\n\tlibgone.so.3 => not found\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n`);
  assert.deepEqual(ldd, { paths: ['/lib/x86_64-linux-gnu/libz.so.1', '/lib64/ld-linux-x86-64.so.2'], missing: ['libgone.so.3'] });
  assert.deepEqual(parseDataDirs('/usr/bin/../share/qemu\n/usr/bin/../lib/ipxe/qemu\n'), ['/usr/share/qemu', '/usr/lib/ipxe/qemu']);
});
