/** @module image/differential: replays fuzz cases against the real qemu-img and lists where both accept an image but disagree on a field. */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { ImageError } from './errors.js';
import { fuzzCases } from './fuzz.js';
import { MemorySource } from './memory.js';
import { readImageInfo } from './reader.js';
import { fromQemu, fuzzSeeds, specificFromQemu, tempDir, type QemuInfo } from './testing.js';
import type { ImageInfo } from './types.js';

export interface DiffReport {
  tally: { both: number; agree: number; oursOnly: number; qemuOnly: number; neither: number };
  disagreements: Array<{ caseNo: number; seed: string; format: string; fields: string[] }>;
  /** Why each side refused where the other accepted (for the verbose listing). */
  oneSided: string[];
}

const FIELDS = ['format', 'virtualSize', 'backingFilename', 'backingFormat', 'encrypted', 'dataFile', 'dirty', 'corrupt'] as const;

/** qemu-img info on a file, under a 1 GiB address-space cap and a 10 s timeout (a mutated header can make it allocate a lot). */
function qemuSide(path: string, format: string | null): { info: Partial<ImageInfo> | null; spec: Record<string, unknown>; why: string } {
  try {
    const out = execFileSync('sh', ['-c', `ulimit -v 1048576; exec qemu-img info --output=json ${format === null ? '' : `-f ${format}`} "$0"`, path], {
      encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'pipe'],
    });
    const q = JSON.parse(out) as QemuInfo;
    return { info: fromQemu(q), spec: specificFromQemu(q), why: '' };
  } catch (err) {
    return { info: null, spec: {}, why: String((err as { stderr?: unknown }).stderr ?? err).trim().split('\n').pop() ?? '' };
  }
}

async function ourSide(bytes: Uint8Array, format: ImageInfo['format'] | null): Promise<{ info: ImageInfo | null; why: string }> {
  try {
    return { info: await readImageInfo(new MemorySource(bytes), format), why: '' };
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    return { info: null, why: `${err.code}: ${err.message}` };
  }
}

/**
 * Where the prober reports on purpose what QEMU will do rather than what qemu-img info
 * prints: a data file name recorded while the external-data-file bit is clear is listed
 * by qemu-img but never opened by QEMU (the prober says so in a note and reports none).
 */
function knownDivergence(field: string, ours: ImageInfo): boolean {
  return field === 'dataFile' && ours.dataFile === null && (ours.notes ?? []).some((n) => n.includes('data file name is recorded'));
}

/** Runs `cases` fuzz cases (dmg skipped: QEMU probes it by name) through both readers. */
export async function differential(cases: number, seed: number): Promise<DiffReport> {
  const rep: DiffReport = { tally: { both: 0, agree: 0, oursOnly: 0, qemuOnly: 0, neither: 0 }, disagreements: [], oneSided: [] };
  const tmp = tempDir();
  try {
    for (const c of fuzzCases(fuzzSeeds(), cases, seed)) {
      if (c.format === 'dmg') continue;
      const bytes = c.mutant.materialize();
      const path = `${tmp.dir}/case`;
      writeFileSync(path, bytes);
      const ours = await ourSide(bytes, c.format);
      const theirs = qemuSide(path, c.format);
      const label = `case ${c.caseNo} (${c.seed.name} as ${c.format ?? 'probed'})`;
      if (ours.info !== null && theirs.info !== null) {
        rep.tally.both++;
        const fields = FIELDS.filter((k) => JSON.stringify(ours.info![k]) !== JSON.stringify(theirs.info![k]) && !knownDivergence(k, ours.info!))
          .map((k) => `${k}: ours ${JSON.stringify(ours.info![k])} qemu ${JSON.stringify(theirs.info![k])}`);
        for (const [k, v] of Object.entries(theirs.spec)) {
          const mine = ours.info.formatSpecific?.[k];
          if (JSON.stringify(mine) !== JSON.stringify(v)) fields.push(`formatSpecific.${k}: ours ${JSON.stringify(mine)} qemu ${JSON.stringify(v)}`);
        }
        if (fields.length === 0) rep.tally.agree++;
        else rep.disagreements.push({ caseNo: c.caseNo, seed: c.seed.name, format: c.format ?? 'probed', fields });
      } else if (ours.info !== null) {
        rep.tally.oursOnly++;
        rep.oneSided.push(`${label}: qemu-img refused: ${theirs.why}`);
      } else if (theirs.info !== null) {
        rep.tally.qemuOnly++;
        rep.oneSided.push(`${label}: we refused: ${ours.why}`);
      } else rep.tally.neither++;
    }
  } finally {
    tmp.remove();
  }
  return rep;
}
