/** @module plan/extras: UEFI firmware on pflash, direct kernel boot, and the small devices (rng, balloon, VNC display). */
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

/**
 * OVMF code (read-only) and the VM's own variable store (read-write, first made as a copy of
 * the firmware's template) as pflash blockdevs; returns the -machine properties. Secure boot
 * takes the secure-boot build, SMM, and pflash the guest can only write from SMM.
 */
export function planFirmware(spec: Spec, facts: Facts, b: PlanBuilder): string[] {
  if (spec.firmware !== 'uefi') return [];
  const fw = facts.firmware;
  if (spec.secureBoot && fw !== undefined && fw.secureBoot !== true) {
    b.issue({ code: 'PLAN_MISSING_FACT', from: 'secureBoot', message: `secureBoot needs OVMF's secure-boot build with enrolled keys (${SECURE_BOOT_FILES.join(' and ')}), which this host lacks`, suggestion: 'install the ovmf package (Debian 12 ships both files), or set secureBoot: false' });
    return [];
  }
  if (fw === undefined) {
    b.issue({ code: 'PLAN_MISSING_FACT', from: 'firmware', message: 'firmware is uefi, but no OVMF firmware was found on this host', suggestion: 'install the ovmf package' });
    return [];
  }
  const pflash = (name: string, path: string, writable: boolean, template?: string): string => {
    const fdset = b.fdsetFile('firmware', `fw-${name}`, path, [writable ? 'O_RDWR' : 'O_RDONLY'], `fw-${name}`, template);
    b.qapiArg('firmware', '-blockdev', 'blockdev-add', { driver: 'file', filename: fdset, 'node-name': `fw-${name}-file`, 'read-only': !writable });
    b.qapiArg('firmware', '-blockdev', 'blockdev-add', { driver: 'raw', 'node-name': `fw-${name}`, file: `fw-${name}-file`, 'read-only': !writable });
    return `fw-${name}`;
  };
  const code = pflash('code', fw.uefiCode, false);
  b.note('file', fw.uefiCode, 'ro', 'firmware', `UEFI firmware code (OVMF${fw.secureBoot === true ? ', secure-boot build' : ''})`);
  const vars = pflash('vars', facts.paths.uefiVars, true, fw.uefiVarsTemplate);
  b.note('file', facts.paths.uefiVars, 'rw', 'firmware', `this VM's UEFI variable store: made as a copy of ${fw.uefiVarsTemplate} at its first start, kept across restarts, removed with the VM`);
  if (!spec.secureBoot) return [`pflash0=${code}`, `pflash1=${vars}`];
  // The variable store is writable only from SMM, so the guest OS cannot rewrite the enrolled keys.
  b.arg('secureBoot', '-global', 'driver=cfi.pflash01,property=secure,value=on');
  return [`pflash0=${code}`, `pflash1=${vars}`, 'smm=on'];
}

/** The secure-boot OVMF pair (Debian's ovmf package): code built with SMM, vars with Microsoft's keys enrolled. */
export const SECURE_BOOT_FILES = ['/usr/share/OVMF/OVMF_CODE_4M.secboot.fd', '/usr/share/OVMF/OVMF_VARS_4M.ms.fd'] as const;

/**
 * QEMU 7.2 opens -kernel and -initrd by name with plain open()/fopen(), which does not
 * understand /dev/fdset (checked: "could not open kernel file '/dev/fdset/2'"). So the
 * manager copies each into a sealed memfd and QEMU reads it as /proc/self/fd/N: nothing the
 * spec names is mounted into the jail, a file in a 0700 directory works, and Landlock lets
 * the read through (a memfd is on no path).
 */
export function planBoot(spec: Spec, b: PlanBuilder): void {
  if (spec.boot === undefined) return;
  b.arg('boot.kernel', '-kernel', b.sealedCopy('boot.kernel', 'kernel', spec.boot.kernel));
  b.note('file', spec.boot.kernel, 'read (manager)', 'boot.kernel', 'copied into a sealed memfd at start; QEMU reads the copy by fd');
  if (spec.boot.initrd !== undefined) {
    b.arg('boot.initrd', '-initrd', b.sealedCopy('boot.initrd', 'initrd', spec.boot.initrd));
    b.note('file', spec.boot.initrd, 'read (manager)', 'boot.initrd', 'copied into a sealed memfd at start; QEMU reads the copy by fd');
  }
  if (spec.boot.cmdline !== undefined) b.arg('boot.cmdline', '-append', spec.boot.cmdline);
}

export function planDevices(spec: Spec, facts: Facts, b: PlanBuilder): void {
  if (spec.rng) {
    b.qapiArg('rng', '-object', 'object-add', { 'qom-type': 'rng-builtin', id: 'rng0' });
    b.device('rng', { driver: 'virtio-rng-pci', rng: 'rng0', id: 'rng', ...b.pci('rng') });
  }
  if (spec.balloon) b.device('balloon', { driver: 'virtio-balloon-pci', id: 'balloon0', ...b.pci('balloon') });
  if (spec.guestAgent) {
    const path = facts.paths.guestAgentSocket ?? `${facts.paths.stateDir}/qga.sock`;
    const fd = b.listenFd('guestAgent', 'guest-agent', path);
    b.device('guestAgent', { driver: 'virtio-serial-pci', id: 'virtio-serial0', ...b.pci('guestAgent') });
    b.arg('guestAgent', '-chardev', `socket,id=qga0,fd=${fd},server=on,wait=off`);
    b.device('guestAgent', { driver: 'virtserialport', bus: 'virtio-serial0.0', nr: 1, chardev: 'qga0', id: 'qga0', name: 'org.qemu.guest_agent.0' });
    b.note('socket', path, 'listen (manager)', 'guestAgent', 'QEMU guest agent channel (virtio-serial port org.qemu.guest_agent.0)');
  }
  if (spec.vnc) {
    b.device('vnc', { driver: 'VGA', id: 'video0', ...b.pci('vnc') });
    // A display with no listener: the manager accepts on its own socket and hands each
    // client to QEMU with QMP getfd + add_client, so QEMU never binds or listens itself.
    b.arg('vnc', '-vnc', 'none');
    // Nothing listens at facts.paths.vncSocket: display clients exist only while a browser holds one (vm/display.ts).
    b.note('socket', 'socketpair per display client', 'rw (passed)', 'vnc', "QEMU listens on no address: the daemon's display WebSocket makes a socketpair per client and passes one end with QMP getfd + add_client protocol=vnc (vm/display.ts)");
  }
}
