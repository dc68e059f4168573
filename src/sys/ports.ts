/** @module sys/ports: the small interfaces behind which every side effect lives, so pure code and tests can swap them. */

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Bytes written to the child's stdin, then closed (unless followUp). */
  input?: string | Uint8Array;
  /**
   * Keeps stdin open after the input until stdout so far satisfies `after`, then writes
   * `input` and closes it: a dialogue whose last request must wait for the earlier answers
   * (QEMU exits on a QMP `quit` without flushing the replies a slow reader has not taken yet).
   */
  followUp?: { after: (stdout: string) => boolean; input: string };
  env?: Record<string, string>;
  cwd?: string;
  /** Kill the child (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
}

/** Runs a helper program to completion (ip, ovs-vsctl, qemu-img ...). Never a shell. */
export interface ProcessRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/**
 * File access with every path under a root prefix, so cgroup, /proc and /sys code can
 * run against a temporary directory in tests. Paths given are absolute host paths.
 */
export interface Fs {
  readonly root: string;
  readFile(path: string): Promise<string>;
  writeFile(path: string, data: string): Promise<void>;
  mkdir(path: string, options?: { recursive?: boolean }): Promise<void>;
  rmdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
}

/** Read-only questions about host files that name resolution needs (symlinks, real paths, directory listings). */
export interface HostFiles {
  /** The canonical path (every symlink resolved); null when the path does not exist. */
  realpath(path: string): Promise<string | null>;
  /** The link text when `path` itself is a symlink, else null. */
  readlink(path: string): Promise<string | null>;
  /** The names in a directory; null when it is not one. */
  readdir(path: string): Promise<string[] | null>;
  /** Whether `path` (symlinks followed) is a regular file. */
  isFile(path: string): Promise<boolean>;
}

export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}
