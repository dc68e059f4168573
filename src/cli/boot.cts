/**
 * @module cli/boot: the fast start of `bin/warden`. Runs a one-file bundle of the CLI
 * (built at setup by scripts/bundle-cli.mjs) through V8's code cache: Node 20 has no module
 * compile cache, but a classic script compiled by vm.Script takes `cachedData`, so the
 * bundle is neither resolved module by module nor compiled again. `warden daemon` runs
 * wardend.cjs (the server, fastify, the web console); every other command warden.cjs, which
 * lacks them. Falls back to the unbundled CLI (bin.js) when the bundle is missing or older
 * than the last TypeScript build, so a rebuild without setup never runs stale code.
 */
import fs = require('node:fs');
import path = require('node:path');
import vm = require('node:vm');
import nodeModule = require('node:module');
import url = require('node:url');

// Only the daemon's own command needs the server: commander has no global option with a value, so argv[2] is the command.
const bundle = path.join(__dirname, process.argv[2] === 'daemon' ? 'wardend.cjs' : 'warden.cjs');
const entry = path.join(__dirname, 'bin.js');
// A code cache per command: made after the command ran, it holds what that command compiled,
// so `--version` does not deserialize what `validate` needed (the cache is read whole). A
// command without one borrows the shared cache (primed by `validate` at setup) where its own
// cannot be written (a checkout of another user).
const command = process.argv[2] ?? '';
const cacheFile = `${bundle}.${/^[a-z][a-z0-9-]{0,31}$/.test(command) ? command : 'main'}.v8cache`;
const sharedCache = `${bundle}.v8cache`;

function mtimeMs(p: string): number {
  try { return fs.statSync(p).mtimeMs; } catch { return -1; }
}

/** Writes the code cache next to the bundle, atomically; a read-only checkout just goes without. */
function saveCache(script: vm.Script): void {
  const tmp = `${cacheFile}.${process.pid}`;
  try {
    fs.writeFileSync(tmp, script.createCachedData());
    fs.renameSync(tmp, cacheFile);
  } catch {
    try { fs.unlinkSync(tmp); } catch { /* never written */ }
  }
}

function writable(dir: string): boolean {
  try { fs.accessSync(dir, fs.constants.W_OK); return true; } catch { return false; }
}

function runBundle(): void {
  // latin1: the bundle is ASCII (scripts/bundle-cli.mjs checks), so no UTF-8 decoding is needed.
  const source = fs.readFileSync(bundle, 'latin1');
  let cachedData: Buffer | undefined;
  let own = true;
  try { cachedData = fs.readFileSync(cacheFile); } catch {
    // First run of this command: made below, or borrowed where it cannot be made.
    if (!writable(__dirname)) {
      own = false;
      try { cachedData = fs.readFileSync(sharedCache); } catch { /* none at all */ }
    }
  }
  const script = new vm.Script(nodeModule.wrap(source), { filename: bundle, ...(cachedData === undefined ? {} : { cachedData }) });
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  const mod = { exports: {} };
  wrapper.call(mod.exports, mod.exports, nodeModule.createRequire(bundle), mod, bundle, __dirname);
  // After the command ran, so the cache holds the functions it compiled lazily too; only after
  // a run that succeeded: a cache is kept until the bundle changes, and one made by a failed
  // first run (a typo, a missing VM) lacks the code of every later successful one.
  if (own && (cachedData === undefined || script.cachedDataRejected === true)) {
    process.once('beforeExit', () => { if ((process.exitCode ?? 0) === 0) saveCache(script); });
  }
}

if (mtimeMs(bundle) >= mtimeMs(entry)) runBundle();
else void import(url.pathToFileURL(entry).href); // the ESM entry, as `node dist/src/cli/bin.js` runs it
