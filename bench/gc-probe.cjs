/**
 * @module bench/gc-probe: preloaded into the daemon by bench/daemon (NODE_OPTIONS, with
 * --expose-gc): on SIGUSR2 a full GC, then RSS and the JS heap in use on stderr, so the
 * per-VM rows tell memory the daemon holds from garbage not collected yet. Bench only.
 */
'use strict';
process.on('SIGUSR2', () => {
  globalThis.gc();
  const m = process.memoryUsage();
  process.stderr.write(`gc-probe ${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, external: m.external })}\n`);
});
