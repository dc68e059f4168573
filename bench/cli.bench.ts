/**
 * @module bench/cli: start-up cost of CLI commands that start no VM (`--version`, `list`,
 * `validate`), each a fresh node process, against `node -e 0` in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../src/vm/index.js';
import { le, medianMs, type Benchmark, type BenchRow } from './lib.js';

function runOk(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
}

export const benchmarks: Benchmark[] = [{
  group: 'cli',
  async run(): Promise<BenchRow[]> {
    const root = repoRoot();
    const state = mkdtempSync('/tmp/warden-cli-bench-');
    try {
      const warden = join(root, 'bin', 'warden');
      const hello = join(root, 'examples', 'hello.yaml');
      const commands: Array<[string, string[]]> = [
        ['warden --version', [warden, '--version']],
        ['warden list (no VMs)', [warden, 'list', '--state-dir', state]],
        ['warden validate examples/hello.yaml', [warden, 'validate', hello, '--cache-dir', state]],
      ];
      runOk(commands[2]![1]); // the QEMU capability cache under the state root, as a user's second run finds it
      const baseline = { name: '`node -e 0`', value: await medianMs(() => runOk([process.execPath, '-e', '0']), 11, 2) };
      const rows: BenchRow[] = [];
      for (const [name, argv] of commands) {
        rows.push({ group: 'cli', name, value: await medianMs(() => runOk(argv), 11, 2), unit: 'ms', baseline, goal: le(1.5) });
      }
      return rows;
    } finally {
      rmSync(state, { recursive: true, force: true });
    }
  },
}];
