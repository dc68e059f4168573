/**
 * @module bench/in-cgroup: starts a baseline's processes in a fresh CPU cgroup under the jails'
 * parent, so they compete for CPU as a jailed program does: every jail on the host shares that
 * parent's one weight, and on a shared host other jails (other VMs) may be busy in it.
 * Diagnostic baselines only; the goals stay on the bare ones.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCgroupLayout, type JailerConfig } from '../src/jail/index.js';

/** The CPU hierarchy's mount and this process's cgroup in it, or undefined (no cpu controller here). */
function cpuHierarchy(config: JailerConfig): { mount: string; own: string; version: 1 | 2 } | undefined {
  const mounts = readFileSync(config.mountsFile, 'utf8');
  const v2 = (m: string): string[] => { try { return readFileSync(join(m, 'cgroup.controllers'), 'utf8').trim().split(/\s+/); } catch { return []; } };
  const layout = parseCgroupLayout(mounts, v2, config.cgroupVersion);
  const mount = layout === undefined ? undefined : layout.version === 1 ? layout.mounts.cpu : layout.controllers.includes('cpu') ? layout.mount : undefined;
  if (mount === undefined) return undefined;
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n').map((l) => l.split(':'));
  const mine = layout!.version === 1 ? lines.find((f) => f[1]?.split(',').includes('cpu')) : lines.find((f) => f[0] === '0');
  return { mount, own: join(mount, mine?.[2] ?? '/'), version: layout!.version };
}

/** A CPU cgroup under the jails' parent that spawns can be placed in. */
export interface ParentCgroup {
  /**
   * Calls `start` with this process in the cgroup and moves it back right after: what `start`
   * spawns synchronously (a child inherits its parent's cgroup at fork) stays there, while
   * this process waits for it outside, as a manager waits for its jails.
   */
  place<T>(start: () => T): T;
  /**
   * The argv that runs `argv` inside the cgroup as a jail's chain gets there: the exec helper
   * joins it (a v1 tasks write of "0", no threadgroup lock) and execs. `place` instead moves
   * this multi-threaded process in and out (cgroup.procs), each move waiting for an RCU grace
   * period, which the chain's time then includes.
   */
  joinArgv(helper: string, argv: readonly string[]): string[];
  /** Removes the cgroup (and the parent, when this made it); call once its processes are gone. */
  remove(): Promise<void>;
}

/** <cpu>/<cgroupParent>/warden-bench-PID, or undefined where the CPU controller is not mounted. */
export function jailParentCgroup(config: JailerConfig): ParentCgroup | undefined {
  const h = cpuHierarchy(config);
  if (h === undefined) return undefined;
  const parent = join(h.mount, config.cgroupParent);
  const madeParent = !existsSync(parent);
  const dir = join(parent, `warden-bench-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  return {
    place(start) {
      writeFileSync(join(dir, 'cgroup.procs'), String(process.pid));
      try { return start(); } finally { writeFileSync(join(h.own, 'cgroup.procs'), String(process.pid)); }
    },
    joinArgv(helper, argv) {
      return [helper, 'pre', ...(h.version === 1 ? ['--cgroup-tasks', join(dir, 'tasks')] : ['--cgroup-procs', join(dir, 'cgroup.procs')]), '--', ...argv];
    },
    async remove() {
      await removeWhenEmpty(dir);
      if (madeParent) await removeWhenEmpty(parent).catch(() => undefined); // a jail may have moved in meanwhile
    },
  };
}

/** rmdir, retried while exiting children still count as members (EBUSY), for up to a second. */
async function removeWhenEmpty(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try { rmdirSync(dir); return; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || i >= 100) throw e;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
