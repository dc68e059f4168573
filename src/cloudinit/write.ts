/**
 * @module cloudinit/write: the I/O shell around the pure seed: writes its files into a
 * temporary directory beside the target, makes the ISO 9660 volume labelled `cidata`
 * with xorriso, and renames it into place (a reader never sees half a volume).
 */
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { ProcessRunner } from '../sys/index.js';
import { CloudInitError } from './errors.js';
import type { Seed } from './seed.js';

/** The volume label NoCloud looks for. */
export const SEED_LABEL = 'cidata';

export async function writeSeed(seed: Seed, path: string, runner: ProcessRunner): Promise<void> {
  const tmp = await mkdtemp(join(dirname(path), `.${basename(path)}.`)).catch((cause: unknown) => {
    throw new CloudInitError('CLOUDINIT_SEED_FAILED', `making a temporary directory beside the cloud-init seed ${path} failed`, { context: { path }, cause });
  });
  try {
    for (const f of seed.files) await writeFile(join(tmp, f.name), f.content, { mode: 0o600 });
    const iso = join(tmp, 'seed.iso');
    // -J -R: Joliet and Rock Ridge, so the guest sees the exact lower-case names with dashes.
    const argv = ['xorriso', '-as', 'mkisofs', '-quiet', '-output', iso, '-volid', SEED_LABEL, '-joliet', '-rock', ...seed.files.map((f) => join(tmp, f.name))];
    const r = await runner.run(argv, { timeoutMs: 60_000 }).catch((cause: unknown) => {
      throw new CloudInitError('CLOUDINIT_SEED_FAILED', `running xorriso to make the cloud-init seed ${path} failed`, {
        context: { path, argv }, cause, suggestions: ['install xorriso (scripts/setup.sh does)'],
      });
    });
    if (r.code !== 0) {
      throw new CloudInitError('CLOUDINIT_SEED_FAILED', `xorriso could not make the cloud-init seed ${path} (exit ${String(r.code)})`, {
        context: { path, argv, stderr: r.stderr.trim().split('\n').slice(-5) },
      });
    }
    await rename(iso, path);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}
