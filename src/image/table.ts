/** @module image/table: the format table: every row the prober knows, in probing order. */
import { bochsRow } from './formats/bochs.js';
import { cloopRow } from './formats/cloop.js';
import { dmgRow } from './formats/dmg.js';
import { luksRow } from './formats/luks.js';
import { parallelsRow } from './formats/parallels.js';
import { qcowRow } from './formats/qcow.js';
import { qcow2Row } from './formats/qcow2.js';
import { qedRow } from './formats/qed.js';
import { rawRow } from './formats/raw.js';
import type { FormatRow } from './formats/row.js';
import { vdiRow } from './formats/vdi.js';
import { vhdxRow } from './formats/vhdx.js';
import { vmdkDescriptorRow, vmdkSparseRow } from './formats/vmdk.js';
import { vpcFixedRow, vpcRow } from './formats/vpc.js';

/**
 * Probing tries rows in this order and takes the first that claims the file (magics do
 * not overlap except qcow/qcow2, told apart by version); raw is the fallback and is never
 * probed for. Rows of one format are variants: VMDK sparse or descriptor, VPC footer at
 * the start or the end. With a format given, its variants are tried in this order.
 */
export const FORMAT_TABLE: readonly FormatRow[] = [
  qcow2Row,
  qcowRow,
  qedRow,
  vmdkSparseRow,
  vmdkDescriptorRow,
  vdiRow,
  vpcRow,
  vpcFixedRow,
  vhdxRow,
  parallelsRow,
  luksRow,
  bochsRow,
  cloopRow,
  dmgRow,
  rawRow,
];
