/**
 * @module plan/view: QEMU's minimal filesystem view: its binary, the libraries and modules
 * it loads, and the firmware, option ROM and keymap files this plan needs, each bound
 * read-only on its own, each in the manifest with the reason. No shell, no other program,
 * no listing of /usr. Built from the binary's view facts (src/qemu/view.ts).
 */
import { posix } from 'node:path';
import type { JailMount } from '../jail/index.js';
import type { QemuView, ViewFile } from '../qemu/index.js';
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

/** Option ROMs QEMU 7.2 loads for the devices the planner emits (romfile defaults). */
const DEVICE_ROMS: Record<string, string> = {
  'virtio-net-pci': 'efi-virtio.rom', e1000e: 'efi-e1000e.rom', rtl8139: 'efi-rtl8139.rom', VGA: 'vgabios-stdvga.bin',
};

/** The x86 BIOS QEMU loads when no pflash firmware is given. */
const BIOS = 'bios-256k.bin';

export interface QemuViewPlan {
  mounts: JailMount[];
  /** Top-level directories of the view, for Landlock's read-only rules. */
  roots: string[];
}

interface Want { name: string; from: string; why: string }

/** The data files this plan makes QEMU open, with the spec field that asks for each. */
function wantedData(spec: Spec, b: PlanBuilder): Want[] {
  const out: Want[] = [{ name: 'kvmvapic.bin', from: 'machine', why: 'the x86 APIC\'s vapic option ROM (loaded on every pc/q35 machine)' }];
  if (spec.firmware === 'bios') out.push({ name: BIOS, from: 'firmware', why: 'SeaBIOS, the BIOS firmware' });
  if (spec.boot !== undefined) out.push({ name: 'linuxboot_dma.bin', from: 'boot.kernel', why: 'option ROM that boots -kernel through fw_cfg DMA' });
  for (const d of b.devices) {
    const rom = DEVICE_ROMS[d.driver];
    if (rom !== undefined && !out.some((w) => w.name === rom)) out.push({ name: rom, from: d.from, why: `option ROM of ${d.driver}` });
  }
  if (spec.vnc) out.push({ name: 'keymaps/en-us', from: 'vnc', why: 'the VNC server\'s default keymap' });
  return out;
}

/** The accelerator module of this binary's target (accel-tcg-x86_64), when QEMU was built with modules. */
function accelModule(view: QemuView, binary: string, accel: 'kvm' | 'tcg'): string | null {
  const arch = /qemu-system-(\w+)$/.exec(binary)?.[1];
  const name = `accel-${accel}-${arch ?? ''}`;
  return arch !== undefined && view.modules[name] !== undefined ? name : null;
}

/** Mounts of the minimal view, with a manifest line per file; issues for data files this host lacks. */
export function planQemuView(spec: Spec, facts: Facts, b: PlanBuilder, accel: 'kvm' | 'tcg', view: QemuView): QemuViewPlan {
  const mounts: JailMount[] = view.links.map((l) => ({ type: 'symlink', linkTarget: l.linkTarget, path: l.path }));
  const seen = new Set<string>(view.links.map((l) => l.path));
  const bind = (f: ViewFile, from: string, why: string): void => {
    if (seen.has(f.path)) return;
    seen.add(f.path);
    mounts.push({ type: 'ro-bind', source: f.source, target: f.path });
    b.note('mount', f.path, 'ro', from, f.source === f.path ? why : `${why}; host file ${f.source}`);
  };
  const exe = posix.basename(facts.qemu.binary);
  bind(view.binary, '(base)', 'the QEMU binary, the only program in the view');
  for (const l of view.libraries) bind(l, '(base)', `shared library of ${exe}`);
  const mod = accelModule(view, facts.qemu.binary, accel);
  if (mod !== null) {
    const m = view.modules[mod]!;
    bind(m.file, 'accel', `QEMU module for the ${accel} accelerator`);
    for (const l of m.libraries) bind(l, 'accel', `shared library of module ${mod}`);
  }
  for (const w of wantedData(spec, b)) {
    const f = view.dataFiles[w.name];
    if (f === undefined) {
      b.issue({ code: 'PLAN_MISSING_FACT', from: w.from, message: `QEMU needs ${w.name} (${w.why}), but none of its data directories (${view.dataDirs.join(', ')}) holds it`, suggestion: 'install the package that ships it (seabios, ipxe-qemu, qemu-system-data)' });
      continue;
    }
    bind(f, w.from, w.why);
  }
  const roots = [...new Set(mounts.map((m) => (m.type === 'symlink' ? null : `/${m.target.split('/')[1]}`)).filter((r): r is string => r !== null))].sort();
  return { mounts, roots };
}
