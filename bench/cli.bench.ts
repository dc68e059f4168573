/**
 * @module bench/cli: start-up cost of CLI commands that start no VM (`--version`, `list`,
 * `validate`), each a fresh process through bin/warden, against `node -e 0` in the same run:
 * wall time (runs interleaved, so a shared machine's drift hits baseline and commands alike)
 * and user+sys CPU (what the load of the other processes on the host changes least).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../src/vm/index.js';
import { isQuick, le, median, n, type Benchmark, type BenchRow } from './lib.js';

function runOk(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
}

/**
 * CPU (user+sys, ms) per run of `argv`: a shell runs it `times` times and reports its
 * children's times from /proc (clock ticks, hence many runs), less the same loop around `true`.
 */
function cpuPerRun(argv: string[], times: number): number {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const ticks = (cmd: string): number => {
    const stat = execFileSync('sh', ['-c', `i=0; while [ $i -lt ${times} ]; do ${cmd} >/dev/null 2>&1; i=$((i+1)); done; cat /proc/$$/stat`], { encoding: 'utf8' });
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[13]) + Number(f[14]); // cutime + cstime (fields 16 and 17; f[0] is field 3)
  };
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  return ((ticks(argv.map(q).join(' ')) - ticks('true')) * 1000) / hz / times;
}

export const benchmarks: Benchmark[] = [{
  group: 'cli',
  async run(): Promise<BenchRow[]> {
    const root = repoRoot();
    const state = mkdtempSync('/tmp/warden-cli-bench-');
    try {
      const warden = join(root, 'bin', 'warden');
      const hello = join(root, 'examples', 'hello.yaml');
      const base: [string, string[]] = ['`node -e 0`', [process.execPath, '-e', '0']];
      const commands: Array<[string, string[]]> = [
        ['warden --version', [warden, '--version']],
        ['warden list (no VMs)', [warden, 'list', '--state-dir', state]],
        ['warden validate examples/hello.yaml', [warden, 'validate', hello, '--cache-dir', state]],
      ];
      runOk(commands[2]![1]); // the QEMU capability cache under the state root, as a user's second run finds it
      const all = [base, ...commands];
      const times = all.map(() => [] as number[]);
      const runs = n(15, 2);
      for (let i = 0; i < runs + 1; i++) {
        all.forEach(([, argv], k) => {
          const t0 = performance.now();
          runOk(argv);
          if (i > 0) times[k]!.push(performance.now() - t0); // the first round warms the page cache
        });
      }
      const baseline = { name: base[0], value: median(times[0]!) };
      const rows: BenchRow[] = commands.map(([name], k) => ({ group: 'cli', name, value: median(times[k + 1]!), unit: 'ms', baseline, goal: le(1.5) }));
      const cpuRuns = isQuick() ? 4 : 20;
      const cpuBase = { name: `${base[0]}, user+sys CPU`, value: cpuPerRun(base[1], cpuRuns) };
      // Clock ticks are coarse: a baseline that rounds to nothing has nothing to compare with.
      if (cpuBase.value > 0) for (const [name, argv] of commands) rows.push({ group: 'cli', name: `${name}: user+sys CPU per run`, value: cpuPerRun(argv, cpuRuns), unit: 'ms', baseline: cpuBase });
      const dir = join(root, 'dist', 'src', 'cli');
      for (const [b, what] of [['warden.cjs', 'every command but `warden daemon`'], ['wardend.cjs', '`warden daemon`']]) {
        try { rows.push({ group: 'cli', name: `bundle ${b}, read at the start of ${what}`, value: statSync(join(dir, b!)).size / 1024, unit: 'KiB' }); } catch { /* not bundled: bin/warden runs bin.js */ }
      }
      return rows;
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  },
}];
