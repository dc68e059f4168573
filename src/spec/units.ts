/** @module spec/units: the value grammars of the spec (sizes, CPU shares, MACs, names) as pure parsers. */

const SIZE_RE = /^([0-9]+)(Ki|Mi|Gi|Ti)?$/;
const MULT: Record<string, number> = { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };

/** "1Gi" → 1073741824; a plain integer is bytes. Returns null when the text is no size. */
export function parseSize(value: string | number): number | null {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : null;
  const m = SIZE_RE.exec(value.trim());
  if (m === null) return null;
  const bytes = Number(m[1]) * (MULT[m[2] ?? ''] ?? 1);
  return Number.isSafeInteger(bytes) && bytes > 0 ? bytes : null;
}

/** Formats bytes back with the largest exact binary unit (for messages and manifests). */
export function formatSize(bytes: number): string {
  for (const unit of ['Ti', 'Gi', 'Mi', 'Ki'] as const) {
    const m = MULT[unit]!;
    if (bytes % m === 0) return `${bytes / m}${unit}`;
  }
  return `${bytes}`;
}

/** "150%" → 150 (percent of one CPU). */
export function parsePercent(value: string | number): number | null {
  if (typeof value === 'number') return value > 0 ? value : null;
  const m = /^([0-9]+(?:\.[0-9]+)?)%$/.exec(value.trim());
  if (m === null) return null;
  const n = Number(m[1]);
  return n > 0 ? n : null;
}

export const NAME_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Device names are short: they end up in QEMU node names (31 characters at most). */
export const DEVICE_NAME_RE = /^[a-z][a-z0-9-]{0,15}$/;
export const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** A MAC is usable for a NIC when it is unicast (lowest bit of the first octet clear). */
export function isUnicastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0;
}
