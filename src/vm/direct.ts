/**
 * @module vm/direct: the launcher used where the jailer cannot run (not root): QEMU is
 * spawned directly, detached, as the calling user, with the planned fds at their numbers.
 * QEMU's own seccomp filter (-sandbox) still applies; everything else the jail adds is
 * off, and the VM's record says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import type { JailSpec } from '../jail/index.js';
import { VmError } from './errors.js';
import type { JailPort, Launched, ProgramExit } from './ports.js';

export const DIRECT_PROTECTIONS_OFF = [
  'uid switch (QEMU runs as the calling user)', 'mount view limited to /usr and the passed fds', 'own pid, ipc, uts and network namespaces',
  'cgroup limits', 'Landlock',
];

export class DirectLauncher implements JailPort {
  private readonly children = new Map<string, ChildProcess>();

  async launch(spec: JailSpec, fds: ReadonlyMap<string, number>, stderrFd: number, statusFile: string, _owner: string): Promise<Launched> {
    const passed = spec.fds.map((f) => {
      const fd = fds.get(f.name);
      if (fd === undefined) throw new VmError('VM_START_FAILED', `no fd named ${f.name} for ${spec.name}`, { context: { vm: spec.name } });
      return fd;
    });
    const [file, ...args] = spec.argv;
    const child = spawn(file!, args, { detached: true, stdio: ['ignore', stderrFd, stderrFd, ...passed], env: spec.env });
    child.unref();
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (cause) => reject(new VmError('VM_START_FAILED', `spawning ${file} for ${spec.name} failed`, { context: { vm: spec.name }, cause })));
    });
    // While this process lives it sees the exit and records it like the jailer's status file.
    child.once('exit', (code, signal) => {
      try { writeFileSync(statusFile, JSON.stringify({ code, signal })); } catch { /* the VM dir may be gone */ }
    });
    this.children.set(spec.name, child);
    return { pid: child.pid!, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, cgroups: [], statusFile, protectionsOff: DIRECT_PROTECTIONS_OFF };
  }

  async exitOf(_jailName: string, statusFile: string | undefined): Promise<ProgramExit | null> {
    if (statusFile === undefined) return null;
    try {
      const v = JSON.parse(readFileSync(statusFile, 'utf8')) as ProgramExit;
      return { code: v.code ?? null, signal: v.signal ?? null };
    } catch {
      return null;
    }
  }

  async teardown(jailName: string): Promise<void> {
    const child = this.children.get(jailName);
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    this.children.delete(jailName);
  }
}
