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
const cacheFile = `${bundle}.v8cache`;

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

function runBundle(): void {
  const source = fs.readFileSync(bundle, 'utf8');
  let cachedData: Buffer | undefined;
  try { cachedData = fs.readFileSync(cacheFile); } catch { /* first run: made below */ }
  const script = new vm.Script(nodeModule.wrap(source), { filename: bundle, ...(cachedData === undefined ? {} : { cachedData }) });
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  const mod = { exports: {} };
  wrapper.call(mod.exports, mod.exports, nodeModule.createRequire(bundle), mod, bundle, __dirname);
  // After the command ran, so the cache holds the functions it compiled lazily too.
  if (cachedData === undefined || script.cachedDataRejected === true) process.once('beforeExit', () => saveCache(script));
}

if (mtimeMs(bundle) >= mtimeMs(entry)) runBundle();
else void import(url.pathToFileURL(entry).href); // the ESM entry, as `node dist/src/cli/bin.js` runs it
