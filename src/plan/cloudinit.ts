/** @module plan/cloudinit: the cloud-init NoCloud seed as a read-only virtio disk, reached by fd like every disk. */
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import type { Facts } from './types.js';

/** The seed's path: the fact when given, else cidata.iso in the VM's state directory (start writes it there). */
export function cloudInitSeedPath(facts: Facts): string {
  return facts.paths.cloudInitSeed ?? `${facts.paths.stateDir}/cidata.iso`;
}

export function planCloudInit(spec: Spec, facts: Facts, b: PlanBuilder): void {
  if (spec.cloudInit === undefined) return;
  const path = cloudInitSeedPath(facts);
  const fdset = b.fdsetFile('cloudInit', 'cloudinit-seed', path, ['O_RDONLY'], 'cloudinit-seed');
  b.qapiArg('cloudInit', '-blockdev', 'blockdev-add', { driver: 'file', filename: fdset, 'node-name': 'cloudinit-seed-file', 'read-only': true });
  b.qapiArg('cloudInit', '-blockdev', 'blockdev-add', { driver: 'raw', 'node-name': 'cloudinit-seed', file: 'cloudinit-seed-file', 'read-only': true });
  b.device('cloudInit', { driver: 'virtio-blk-pci', drive: 'cloudinit-seed', id: 'cloudinit-seed', ...b.pci('cloudInit') });
  b.note('file', path, 'ro', 'cloudInit', 'cloud-init NoCloud seed (ISO 9660, label cidata), written by warden at start');
}
