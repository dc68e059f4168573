/** @module plan/extras: UEFI firmware on pflash, direct kernel boot, and the small devices (rng, balloon, VNC display). */
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

/** OVMF code (read-only) and the per-VM vars copy (read-write) as pflash blockdevs; returns the -machine properties. */
export function planFirmware(spec: Spec, facts: Facts, b: PlanBuilder): string[] {
  if (spec.firmware !== 'uefi') return [];
  if (facts.firmware === undefined) {
    b.issue({ code: 'PLAN_MISSING_FACT', from: 'firmware', message: 'firmware is uefi, but no OVMF firmware was found on this host', suggestion: 'install the ovmf package' });
    return [];
  }
  const pflash = (name: string, path: string, writable: boolean, note: string): string => {
    const fdset = b.fdsetFile('firmware', `fw-${name}`, path, [writable ? 'O_RDWR' : 'O_RDONLY'], `fw-${name}`);
    b.qapiArg('firmware', '-blockdev', 'blockdev-add', { driver: 'file', filename: fdset, 'node-name': `fw-${name}-file`, 'read-only': !writable });
    b.qapiArg('firmware', '-blockdev', 'blockdev-add', { driver: 'raw', 'node-name': `fw-${name}`, file: `fw-${name}-file`, 'read-only': !writable });
    b.note('file', path, writable ? 'rw' : 'ro', 'firmware', note);
    return `fw-${name}`;
  };
  const code = pflash('code', facts.firmware.uefiCode, false, 'UEFI firmware code (OVMF)');
  const vars = pflash('vars', facts.paths.uefiVars, true, `this VM's copy of the UEFI variable store (from ${facts.firmware.uefiVarsTemplate})`);
  return [`pflash0=${code}`, `pflash1=${vars}`];
}

/**
 * QEMU 7.2 opens -kernel and -initrd by name with plain open()/fopen(), which does not
 * understand /dev/fdset (checked: "could not open kernel file '/dev/fdset/2'"), so these
 * files are bind-mounted read-only into the jail at the same path instead; see planJail.
 */
export function planBoot(spec: Spec, b: PlanBuilder): string[] {
  if (spec.boot === undefined) return [];
  const files = [spec.boot.kernel];
  b.arg('boot.kernel', '-kernel', spec.boot.kernel);
  b.note('file', spec.boot.kernel, 'ro', 'boot.kernel', 'opened by name inside the jail (read-only bind mount): QEMU does not take -kernel from an fdset');
  if (spec.boot.initrd !== undefined) {
    files.push(spec.boot.initrd);
    b.arg('boot.initrd', '-initrd', spec.boot.initrd);
    b.note('file', spec.boot.initrd, 'ro', 'boot.initrd', 'opened by name inside the jail (read-only bind mount)');
  }
  if (spec.boot.cmdline !== undefined) b.arg('boot.cmdline', '-append', spec.boot.cmdline);
  return files;
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
