// Bundles the compiled CLI (dist/src/cli/bin.js and everything it imports, npm packages
// included) into one CommonJS file, dist/src/cli/warden.cjs, which bin/warden runs through
// dist/src/cli/boot.cjs with V8's code cache (see src/cli/boot.cts): one file compiled once
// instead of ~250 modules resolved, read, compiled and linked at every command. The bundle
// sits beside bin.js, so every `import.meta.url`-relative path in the sources (the native
// addon, the log writer, the test guest) resolves the same. Then primes the code cache.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = `${root}dist/src/cli/warden.cjs`;
await build({
  entryPoints: [`${root}dist/src/cli/bin.js`],
  outfile: out,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Smaller to read and hash; names stay (error classes, stack traces).
  minifyWhitespace: true,
  minifySyntax: true,
  // CommonJS has no import.meta: the module's own file URL stands in for it.
  define: { 'import.meta.url': '__wardenMetaUrl' },
  banner: { js: "const __wardenMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  logLevel: 'warning',
});
rmSync(`${out}.v8cache`, { force: true });
// A run that parses a spec and walks the verbs' definitions compiles what most commands use.
const r = spawnSync(process.execPath, [`${root}dist/src/cli/boot.cjs`, 'validate', '--no-images', `${root}examples/hello.yaml`], { encoding: 'utf8' });
if (r.status !== 0) {
  console.error(`bundle-cli: the bundled CLI failed its first run:\n${r.stdout}${r.stderr}`);
  process.exit(1);
}
