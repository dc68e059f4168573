/** @module image/table: the format table: every row the prober knows, in probing order. */
import type { FormatRow } from './formats/row.js';
import { qcow2Row } from './formats/qcow2.js';
import { rawRow } from './formats/raw.js';

/**
 * Probing tries rows in this order and takes the first that claims the file; raw is
 * the fallback and is never probed for. Rows of the same format are variants (VMDK
 * sparse and descriptor, VPC footer at the start or the end).
 */
export const FORMAT_TABLE: readonly FormatRow[] = [
  qcow2Row,
  rawRow,
];
