/** @module sys/node-host-files: the real HostFiles port (realpath, readlink, readdir, stat) with "absent" as null, not as an error. */
import { promises as fsp, statSync } from 'node:fs';
import type { HostFiles } from './ports.js';

const orNull = async <T>(p: Promise<T>): Promise<T | null> => { try { return await p; } catch { return null; } };

export class NodeHostFiles implements HostFiles {
  realpath(path: string): Promise<string | null> { return orNull(fsp.realpath(path)); }
  readlink(path: string): Promise<string | null> { return orNull(fsp.readlink(path)); }
  readdir(path: string): Promise<string[] | null> { return orNull(fsp.readdir(path)); }
  /**
   * A synchronous stat underneath: callers ask it about programs' own local files (a QEMU
   * cache check stats ~80 libraries, modules and data files), where one thread-pool round trip
   * per file cost twice the CPU of the stats themselves (issue 16). Any failure is "not a file", as before.
   */
  isFile(path: string): Promise<boolean> {
    let file = false;
    try { file = statSync(path, { throwIfNoEntry: false })?.isFile() ?? false; } catch { /* EACCES, ENOTDIR ...: not a file */ }
    return Promise.resolve(file);
  }
}
