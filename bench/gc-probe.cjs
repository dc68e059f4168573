/**
 * @module bench/gc-probe: preloaded into the daemon by bench/daemon (NODE_OPTIONS --require):
 * on SIGUSR2 a full GC, then RSS and the JS heap in use on stderr, so the per-VM rows tell
 * memory the daemon holds from garbage not collected yet. Bench only. `gc` is exposed at run
 * time, not by --expose-gc on the command line: a V8 flag there would make V8 reject the
 * daemon's code cache (made under the daemon's own flags), and the bench would measure a
 * daemon compiling from source.
 */
'use strict';
require('v8').setFlagsFromString('--expose-gc');
const gc = require('vm').runInNewContext('gc');
process.on('SIGUSR2', () => {
  gc();
  const m = process.memoryUsage();
  process.stderr.write(`gc-probe ${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, external: m.external })}\n`);
});
