/**
 * @module cli/commands/host: `warden host check`: what this host gives the jailer and the
 * image policy, and where they collide with the host: uid-range overlaps (login.defs,
 * subuid/subgid), ids of the range held by accounts, processes or files, the host image
 * policy file, Landlock. Exit 6 when something collides.
 */
import type { Command } from 'commander';
import { WardenError } from '../../errors/index.js';
import { printJson, type Io } from '../output.js';

export interface HostCheckReport {
  uidRange: { first: number; last: number };
  rangeConflicts: Array<{ source: string; first: number; last: number; detail: string; active: boolean }>;
  idsInUse: Array<{ id: number; why: string }>;
  imagePolicy: { file: string; imageDirs: string[]; present: boolean; error?: string };
  landlockAbi: number;
  problems: string[];
}

export async function hostCheck(): Promise<HostCheckReport> {
  // Loaded when the check runs, not at every command's start-up (issue 16).
  const [{ hostPolicyFile, loadHostPolicy }, { LeaseStore, probeJailHost, rangeCollisions, readRangeConflicts }, { jailerConfig }] = await Promise.all([
    import('../../image/index.js'), import('../../jail/index.js'), import('../../vm/index.js'),
  ]);
  const config = jailerConfig();
  const range = config.uidRange;
  const leased = new Set((await new LeaseStore(config).list().catch(() => [])).flatMap((r) => [r.uid, r.gid]));
  const [conflicts, inUse, jail] = await Promise.all([
    readRangeConflicts(range), rangeCollisions(range, [config.stateDir, config.runtimeDir], leased), probeJailHost(config),
  ]);
  // An inactive overlap (a subuid entry with no newuidmap installed) is shown but is not a problem yet.
  const problems: string[] = conflicts.filter((c) => c.active).map((c) => `the uid range overlaps ${c.source}: ${c.detail}`);
  problems.push(...inUse.map((u) => `id ${u.id} of the uid range is taken: ${u.why} (leases skip it)`));
  let imagePolicy: HostCheckReport['imagePolicy'];
  try {
    const p = loadHostPolicy();
    imagePolicy = { file: hostPolicyFile(), imageDirs: p.imageDirs, present: p.file !== null };
  } catch (err) {
    imagePolicy = { file: hostPolicyFile(), imageDirs: [], present: true, error: (err as Error).message };
    problems.push((err as Error).message);
  }
  return { uidRange: { first: range.first, last: range.first + range.count - 1 }, rangeConflicts: conflicts, idsInUse: inUse, imagePolicy, landlockAbi: jail.landlockAbi, problems };
}

/** `reservedFor`: the account the range is reserved for (jail's RESERVED_FOR). */
function human(r: HostCheckReport, reservedFor: string): string[] {
  const lines = [`uid range ${r.uidRange.first}-${r.uidRange.last}: ${r.rangeConflicts.length === 0 ? 'clear of login.defs and other users\' subuid/subgid' : r.rangeConflicts.some((c) => c.active) ? 'OVERLAPS' : 'overlaps inactive subuid/subgid entries'}`];
  for (const c of r.rangeConflicts) lines.push(`  ${c.active ? '' : '(inactive) '}${c.source}: ${c.detail}`);
  lines.push(`ids of the range taken on this host: ${r.idsInUse.length === 0 ? 'none' : r.idsInUse.length}`);
  for (const u of r.idsInUse.slice(0, 20)) lines.push(`  ${u.id}: ${u.why}`);
  const p = r.imagePolicy;
  lines.push(`image policy ${p.file}: ${p.error ?? (p.present ? `imageDirs ${p.imageDirs.length === 0 ? '(none)' : p.imageDirs.join(', ')}` : 'absent (each disk: its top image\'s directory and its allowDirs only)')}`);
  lines.push(`Landlock: ${r.landlockAbi === 0 ? 'not available (jails run without it; shown as a protection off)' : `ABI ${r.landlockAbi}`}`);
  if (r.rangeConflicts.length > 0 || r.idsInUse.length > 0) {
    lines.push(`reserve the range: useradd --system --no-create-home --shell /usr/sbin/nologin ${reservedFor}; usermod --add-subuids ${r.uidRange.first}-${r.uidRange.last} --add-subgids ${r.uidRange.first}-${r.uidRange.last} ${reservedFor} (docs/jail.md)`);
  }
  return lines;
}

export function registerHost(program: Command, io: Io): void {
  const host = program.command('host').description('this host as the jailer and the image policy see it');
  host.command('check')
    .description('report uid-range collisions (login.defs, subuid/subgid, accounts, processes, files), the host image policy and Landlock; exit 6 on a collision')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const r = await hostCheck();
      // With --json a failed check is one {error} document whose context holds the whole report (as every verb's errors are).
      if (opts.json !== true) io.out(human(r, (await import('../../jail/index.js')).RESERVED_FOR).join('\n'));
      if (r.problems.length > 0) {
        throw new WardenError('HOST_CHECK_FAILED', `host check: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}: ${r.problems[0]}`, { context: { problems: r.problems, report: r } });
      }
      if (opts.json === true) printJson(io, r);
    });
}
