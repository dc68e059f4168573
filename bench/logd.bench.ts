/** @module bench/logd: the log writer's throughput (pipe → capped, rotating file) against `cat` doing the plain copy, and its memory. */
import { spawn } from 'node:child_process';
import { closeSync, constants as C, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Benchmark } from './lib.js';
import { medianMs, n } from './lib.js';
import { loadNative } from '../src/sys/index.js';
import { logdPath } from '../src/vm/index.js';

const TOTAL = n(64, 4) * 1024 * 1024;
const PIECE = Buffer.alloc(4096, 0x41);

/** Writes TOTAL bytes through a pipe into a program that reads fd 3 and exits at end of file; ms until it has exited. */
async function through(argv: string[], withFiles: (dir: string) => number[], rss?: { kib: number }): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-logd-'));
  try {
    const [read, write] = loadNative().pipe();
    const files = withFiles(dir);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'ignore', read, ...files] });
    for (const fd of [read, ...files]) closeSync(fd);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    await new Promise((r) => child.once('spawn', r));
    const t0 = performance.now();
    for (let at = 0; at < TOTAL; at += PIECE.length) writeSync(write, PIECE);
    if (rss !== undefined) rss.kib = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
    closeSync(write);
    await exited;
    return performance.now() - t0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const logFiles = (dir: string): number[] => [
  openSync(join(dir, 'x.log'), C.O_RDWR | C.O_CREAT | C.O_APPEND, 0o600), openSync(join(dir, 'x.log.1'), C.O_RDWR | C.O_CREAT, 0o600),
];

export const benchmarks: Benchmark[] = [
  {
    group: 'logd',
    async run() {
      const cap = 8 * 1024 * 1024;
      const rss = { kib: 0 };
      const writer = await medianMs(() => through([logdPath(), `3:4:5:${cap}`], logFiles, rss), 5);
      const cat = await medianMs(() => through(['sh', '-c', 'exec cat <&3 >&4'], (dir) => [openSync(join(dir, 'x.log'), C.O_WRONLY | C.O_CREAT | C.O_APPEND, 0o600)]), 5);
      const mib = TOTAL / 1024 / 1024;
      return [
        { group: 'logd', name: `${TOTAL >> 20} MiB of console output into serial.log, 8 MiB cap`, value: mib / (writer / 1000), unit: 'MiB/s', baseline: { name: 'cat from the pipe into one file, no cap', value: mib / (cat / 1000) } },
        { group: 'logd', name: 'log writer peak memory (VmHWM)', value: rss.kib, unit: 'KiB' },
      ];
    },
  },
];
