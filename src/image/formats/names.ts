/** @module image/formats/names: format names as QEMU spells them, and the check that a recorded backing format is one we read. */
import { ImageError } from '../errors.js';
import type { ImageFormat } from '../types.js';

export const IMAGE_FORMATS: readonly ImageFormat[] = [
  'raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vpc', 'vhdx', 'parallels', 'luks', 'bochs', 'cloop', 'dmg',
];

export function isImageFormat(name: string): name is ImageFormat {
  return (IMAGE_FORMATS as readonly string[]).includes(name);
}

/** A backing format recorded in an overlay, checked against the formats we read (QEMU accepts driver names we refuse). */
export function backingFormatName(recorded: string): ImageFormat {
  if (isImageFormat(recorded)) return recorded;
  throw new ImageError('IMAGE_BACKING_FORMAT_UNSUPPORTED', `the overlay records backing format "${recorded}", which qemu-warden does not read`, {
    context: { backingFormat: recorded },
    suggestions: [`record a format qemu-warden reads: qemu-img rebase -u -F FMT -b BACKING OVERLAY (FMT one of ${IMAGE_FORMATS.join(', ')})`],
  });
}
