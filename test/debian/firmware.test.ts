/**
 * The image of scripts/build-image.sh boots with both firmwares, in bare QEMU (TCG): SeaBIOS
 * through GRUB's boot.img/core.img, OVMF through EFI/BOOT/BOOTX64.EFI. Each boot is watched
 * until systemd greets from the root file system, which proves loader, kernel, initrd and
 * root device; the full boot to sshd is the lifecycle test's business.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { SYSTEMD_WELCOME, bareQemu, debianImage, ovmf, overlayDir } from './image.js';

const BOOT_TIMEOUT = 180_000;

test('the Debian image boots under SeaBIOS (GRUB i386-pc from the MBR and the BIOS boot partition)', { timeout: BOOT_TIMEOUT + 30_000 }, async (t) => {
  const img = debianImage();
  if ('skip' in img) return t.skip(img.skip);
  const o = overlayDir(img.path);
  assert.equal(statSync(o.dir).mode & 0o777, 0o700);
  const q = bareQemu(o.overlay);
  t.after(async () => { await q.stop(); o.cleanup(); });
  await q.waitFor(SYSTEMD_WELCOME, BOOT_TIMEOUT);
  assert.match(q.console(), /Command line: BOOT_IMAGE=\/vmlinuz .*console=ttyS0/, 'GRUB booted the kernel, its console on the serial port');
  assert.doesNotMatch(q.console(), /efi: EFI v/, 'a BIOS boot, not EFI');
});

test('the Debian image boots under OVMF (GRUB x86_64-efi as the removable-media loader)', { timeout: BOOT_TIMEOUT + 30_000 }, async (t) => {
  const img = debianImage();
  if ('skip' in img) return t.skip(img.skip);
  const fw = ovmf();
  if (fw === null) return t.skip('no OVMF firmware on this host (package ovmf)');
  const o = overlayDir(img.path);
  const vars = join(o.dir, 'vars.fd');
  copyFileSync(fw.vars, vars);
  const q = bareQemu(o.overlay, { uefiVars: vars });
  t.after(async () => { await q.stop(); o.cleanup(); });
  await q.waitFor(SYSTEMD_WELCOME, BOOT_TIMEOUT);
  assert.match(q.console(), /BdsDxe: starting Boot/, 'OVMF started a boot option');
  assert.match(q.console(), /efi: EFI v2/, 'the kernel booted as an EFI program');
  assert.match(q.console(), /Command line: BOOT_IMAGE=\/vmlinuz .*console=ttyS0/, 'GRUB booted the kernel, its console on the serial port');
});
