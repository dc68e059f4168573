import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../vm/index.js';

const root = repoRoot();
const run = (argv: string[], cwd = tmpdir()) => spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd });

test('bin/warden (the bundle through boot.cjs, or bin.js while it is stale) answers as the unbundled CLI, from any directory and through a symlink', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-boot-'));
  try {
    const link = join(dir, 'warden');
    symlinkSync(join(root, 'bin', 'warden'), link);
    const state = join(dir, 'state');
    // `daemon --help` runs from wardend.cjs, the rest from warden.cjs (which has no server).
    for (const args of [['--version'], ['list', '--json', '--state-dir', state], ['validate', '--no-images', '--json', join(root, 'examples', 'hello.yaml')], ['daemon', '--help'], ['help', 'daemon']]) {
      const direct = run([process.execPath, join(root, 'dist', 'src', 'cli', 'bin.js'), ...args]);
      for (const via of [join(root, 'bin', 'warden'), link]) {
        const r = run([via, ...args], dir);
        assert.deepEqual([r.status, r.stdout, r.stderr], [direct.status, direct.stdout, direct.stderr], `${via} ${args.join(' ')}`);
      }
    }
    const bundles = ['warden.cjs', 'wardend.cjs'].map((b) => join(root, 'dist', 'src', 'cli', b));
    if (bundles.every((b) => existsSync(b) && statSync(b).mtimeMs >= statSync(join(root, 'dist', 'src', 'cli', 'bin.js')).mtimeMs)) {
      for (const b of bundles) assert.ok(existsSync(`${b}.v8cache`), `a run of ${b} leaves its V8 code cache beside it`);
    } else {
      console.log('# a bundle is missing or older than the build (run scripts/setup.sh): bin/warden ran bin.js');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
