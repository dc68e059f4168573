/** @module sys/node-host-files: the real HostFiles port (realpath, readlink, readdir, stat) with "absent" as null, not as an error. */
import { promises as fsp } from 'node:fs';
import type { HostFiles } from './ports.js';

const orNull = async <T>(p: Promise<T>): Promise<T | null> => { try { return await p; } catch { return null; } };

export class NodeHostFiles implements HostFiles {
  realpath(path: string): Promise<string | null> { return orNull(fsp.realpath(path)); }
  readlink(path: string): Promise<string | null> { return orNull(fsp.readlink(path)); }
  readdir(path: string): Promise<string[] | null> { return orNull(fsp.readdir(path)); }
  async isFile(path: string): Promise<boolean> { return (await orNull(fsp.stat(path)))?.isFile() ?? false; }
}
