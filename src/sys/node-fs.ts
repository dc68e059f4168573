/**
 * @module sys/node-fs: the real Fs port, every path placed under a root prefix ("/" on a live host).
 * It reads and writes kernel control files (/proc, /sys, cgroupfs) and small caches, so the
 * calls are synchronous behind the promise API: on a loaded host each trip through the thread
 * pool (fsp.readFile alone makes four or five) cost far more than the call itself.
 */
import { accessSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fs } from './ports.js';

export class NodeFs implements Fs {
  constructor(readonly root: string = '/') {}

  private at(path: string): string {
    return this.root === '/' ? path : join(this.root, path);
  }
  async readFile(path: string): Promise<string> { return readFileSync(this.at(path), 'utf8'); }
  async writeFile(path: string, data: string): Promise<void> { writeFileSync(this.at(path), data); }
  async mkdir(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    mkdirSync(this.at(path), { recursive: options.recursive ?? false });
  }
  async rmdir(path: string): Promise<void> { rmdirSync(this.at(path)); }
  async readdir(path: string): Promise<string[]> { return readdirSync(this.at(path)); }
  async exists(path: string): Promise<boolean> {
    try { accessSync(this.at(path)); return true; } catch { return false; }
  }
}
