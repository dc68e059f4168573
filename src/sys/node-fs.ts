/** @module sys/node-fs: the real Fs port, every path placed under a root prefix ("/" on a live host). */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Fs } from './ports.js';

export class NodeFs implements Fs {
  constructor(readonly root: string = '/') {}

  private at(path: string): string {
    return this.root === '/' ? path : join(this.root, path);
  }
  readFile(path: string): Promise<string> { return fsp.readFile(this.at(path), 'utf8'); }
  writeFile(path: string, data: string): Promise<void> { return fsp.writeFile(this.at(path), data); }
  async mkdir(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await fsp.mkdir(this.at(path), { recursive: options.recursive ?? false });
  }
  rmdir(path: string): Promise<void> { return fsp.rmdir(this.at(path)); }
  readdir(path: string): Promise<string[]> { return fsp.readdir(this.at(path)); }
  async exists(path: string): Promise<boolean> {
    try { await fsp.access(this.at(path)); return true; } catch { return false; }
  }
}
