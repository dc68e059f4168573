// Bundles the compiled CLI (dist/src/cli/bin.js and everything it imports, npm packages
// included) into CommonJS files that bin/warden runs through dist/src/cli/boot.cjs with V8's
// code cache (see src/cli/boot.cts): one file compiled once instead of ~250 modules resolved,
// read, compiled and linked at every command. Two of them: wardend.cjs, everything (for
// `warden daemon`: fastify, the API, the web console), and warden.cjs, every other command,
// without the daemon's server: half the bytes to read and a smaller code cache for a command
// that starts no daemon (issue 16). The bundles sit beside bin.js, so every
// `import.meta.url`-relative path in the sources (the native addon, the log writer, the test
// guest) resolves the same. Then primes the code caches.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Node builtins outside the startup snapshot, loaded on first use instead of when the module
 * that imports them initialises: commander requires child_process (for executable
 * subcommands we never use) and net/names requires crypto, which alone cost `warden
 * --version` ~40 internal modules. Each import gets an object of getters over the real
 * module's exports (esbuild's ESM interop copies them as getters too), so every use still
 * reaches the real function, class or constant; nothing else changes.
 */
const LAZY_BUILTINS = ['child_process', 'crypto', 'dgram', 'http', 'https', 'net', 'os', 'readline', 'stream', 'timers/promises', 'tls', 'zlib'];
/**
 * Lazy only where our own sources import them (validate's CPU: stream, os, timers/promises
 * and fs.promises' users were ~2 ms at every start): node:stream's default export is the
 * Stream constructor, which a package may extend or test with instanceof, so packages get the
 * real module.
 */
const LAZY_FROM_SOURCES_ONLY = new Set(['stream']);
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    const filter = new RegExp(`^(node:)?(${LAZY_BUILTINS.join('|')})$`);
    b.onResolve({ filter }, (args) => {
      if (args.namespace === 'lazy-builtin') return { path: args.path, external: true };
      const name = args.path.replace(/^node:/, '');
      if (LAZY_FROM_SOURCES_ONLY.has(name) && args.importer.includes('/node_modules/')) return undefined;
      return { path: name, namespace: 'lazy-builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => {
      const names = Object.keys(createRequire(import.meta.url)(`node:${args.path}`)).filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
      const getters = names.map((n) => `get ${n}() { return load().${n}; }`).join(',\n');
      return { contents: `let m;\nconst load = () => (m ??= require('node:${args.path}'));\nmodule.exports = {\n${getters}\n};\n`, loader: 'js' };
    });
  },
};
/** In warden.cjs, the daemon's server is a stub: boot.cjs runs `warden daemon` from wardend.cjs. */
const withoutServer = {
  name: 'without-server',
  setup(b) {
    b.onResolve({ filter: /\/api\/server\.js$/ }, (args) => (args.importer.endsWith('/cli/commands/daemon.js') ? { path: 'server', namespace: 'no-server' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'no-server' }, () => ({
      contents: "export function runDaemon() { throw new Error('warden.cjs has no daemon: bin/warden runs `warden daemon` from wardend.cjs (src/cli/boot.cts)'); }",
      loader: 'js',
    }));
  },
};

const dir = `${root}dist/src/cli`;
for (const [name, plugins] of [['warden.cjs', [lazyBuiltins, withoutServer]], ['wardend.cjs', [lazyBuiltins]]]) {
  const out = `${dir}/${name}`;
  const { metafile } = await build({
    entryPoints: [`${dir}/bin.js`],
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
    // No license comments: one non-ASCII byte would make V8 hold the whole source as UTF-16.
    legalComments: 'none',
    plugins,
    logLevel: 'warning',
    metafile: true,
  });
  // esbuild escapes non-ASCII (charset ascii) and keeps no comment: boot.cjs reads the file as latin1.
  if (readFileSync(out).some((b) => b > 0x7f)) {
    console.error(`bundle-cli: ${out} has a non-ASCII byte; boot.cjs reads it as latin1`);
    process.exit(1);
  }
  // `import { z } from 'zod'` (instead of `import * as z`) keeps zod's whole namespace, with its
  // locales (~60 files): 0.4 MB more to read and deserialise at every start (issue 16).
  const locales = Object.entries(Object.values(metafile.outputs)[0].inputs).filter(([f, i]) => i.bytesInOutput > 0 && /zod\/v4\/locales\/(?!(en|index)\.js$)/.test(f));
  if (locales.length > 0) console.error(`bundle-cli: warning: ${out} holds zod's locales (${locales.length} files), every command reads them: import zod as \`import * as z from 'zod'\`, not \`import { z }\``);
  for (const f of readdirSync(dir)) if (f.startsWith(`${name}.`) && f.endsWith('.v8cache')) rmSync(`${dir}/${f}`, { force: true });
}
// Code caches (src/cli/boot.cts): one per command, made by its first run. These runs make them
// for the commonest, and `validate` (which compiles what most commands use) and `daemon --help`
// make the shared ones that a command without its own borrows in a checkout it cannot write.
const state = mkdtempSync('/tmp/warden-bundle-');
try {
  // validate's own cache comes from a whole check (facts from cached QEMU capabilities, the
  // planner, the host network checks), as a user's second run makes it: primed with
  // --no-images, those functions were compiled again on every run (issue 16). The first run
  // probes QEMU into the temporary state, the second (served from that) makes the code cache.
  // A host where that fails keeps the --no-images cache.
  const validateCache = `${dir}/warden.cjs.validate.v8cache`;
  const whole = ['validate', `${root}examples/hello.yaml`, '--cache-dir', state];
  const runs = (args) => spawnSync(process.execPath, [`${dir}/boot.cjs`, ...args], { encoding: 'utf8' }).status === 0;
  let primed = runs(whole);
  rmSync(validateCache, { force: true });
  primed = primed && runs(whole);
  if (!primed) rmSync(validateCache, { force: true });
  const firstRuns = [['daemon', '--help'], ['--version'], ['list', '--state-dir', state]];
  if (!primed) firstRuns.unshift(['validate', '--no-images', `${root}examples/hello.yaml`]);
  for (const args of firstRuns) {
    // The daemon runs with bin/warden's V8 flag for it (keep the two alike): V8 rejects a code
    // cache made under other flags, and the daemon would compile its bundle from source.
    const flags = args[0] === 'daemon' ? ['--max-semi-space-size=1'] : [];
    const r = spawnSync(process.execPath, [...flags, `${dir}/boot.cjs`, ...args], { encoding: 'utf8' });
    if (r.status !== 0) {
      console.error(`bundle-cli: the bundled CLI failed its first run (${args.join(' ')}):\n${r.stdout}${r.stderr}`);
      process.exit(1);
    }
  }
} finally {
  rmSync(state, { recursive: true, force: true });
}
copyFileSync(`${dir}/warden.cjs.validate.v8cache`, `${dir}/warden.cjs.v8cache`);
copyFileSync(`${dir}/wardend.cjs.daemon.v8cache`, `${dir}/wardend.cjs.v8cache`);
