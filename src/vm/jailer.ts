/** @module vm/jailer: the JailPort bound to src/jail (as root): launch with a leased uid, exit from bwrap's status file, teardown. */
import { execFileSync } from 'node:child_process';
import { defaultJailerConfig, launchJail, readJailExit, teardownJail, type JailerConfig } from '../jail/index.js';
import type { Fs } from '../sys/index.js';
import { fromStatusCode } from './exit.js';
import type { JailPort, Launched, PlanView, ProgramExit } from './ports.js';

/**
 * The jailer's config. Its uid leases are host-wide (the jailer's defaults, /var/lib/warden/jail
 * and /run/warden/jail), not per state root: two VMs under different state roots must still
 * get different uids. WARDEN_JAIL_STATE_DIR / WARDEN_JAIL_RUNTIME_DIR move them.
 */
export function jailerConfig(overrides: Partial<JailerConfig> = {}, env: NodeJS.ProcessEnv = process.env): JailerConfig {
  return defaultJailerConfig({
    ...(env['WARDEN_JAIL_STATE_DIR'] ? { stateDir: env['WARDEN_JAIL_STATE_DIR'] } : {}),
    ...(env['WARDEN_JAIL_RUNTIME_DIR'] ? { runtimeDir: env['WARDEN_JAIL_RUNTIME_DIR'] } : {}),
    ...overrides,
  });
}

/**
 * Protections the plan asks for that this host cannot give: a Landlock layer on a kernel
 * without Landlock is skipped by the exec helper (unless landlockRequired), so it is listed
 * as off (inspect, start warnings), never dropped silently.
 */
export function protectionsOffFor(spec: { landlock?: unknown }, landlockAbi: number): string[] {
  return spec.landlock !== undefined && landlockAbi === 0 ? ['Landlock (planned, but this kernel has none: the file-access layer is not applied)'] : [];
}

export class JailerLauncher implements JailPort {
  private abi: number | undefined;
  /** `landlockAbi` asks the exec helper (cached); tests inject a kernel without Landlock. */
  constructor(private readonly config: JailerConfig, private readonly fs: Fs, private readonly probeAbi?: () => number) {}

  private landlockAbi(): number {
    if (this.abi !== undefined) return this.abi;
    try {
      this.abi = this.probeAbi?.() ?? (Number(execFileSync(this.config.helperPath, ['abi'], { encoding: 'utf8', timeout: 5000 }).trim()) || 0);
    } catch { this.abi = 0; }
    return this.abi;
  }

  async launch(spec: PlanView['jail'], fds: ReadonlyMap<string, number>, stderrFd: number, statusFile: string, owner: string): Promise<Launched> {
    // The planner states an identity for the manifest; the uid itself is leased at launch.
    const h = await launchJail({ ...spec, identity: { lease: true } }, { fds, stdio: { stderr: stderrFd }, statusFile, owner, config: this.config, fs: this.fs });
    return { pid: h.pid, uid: h.uid, gid: h.gid, cgroups: h.cgroupPaths, launcherPid: h.monitorPid, statusFile: h.statusFile, protectionsOff: protectionsOffFor(spec, this.landlockAbi()) };
  }

  async exitOf(_name: string, statusFile: string | undefined): Promise<ProgramExit | null> {
    const e = statusFile === undefined ? undefined : readJailExit(statusFile);
    return e === undefined || e.exitCode === null ? null : fromStatusCode(e.exitCode);
  }

  async teardown(name: string, owner?: string): Promise<void> {
    await teardownJail(name, this.config, this.fs, owner === undefined ? {} : { owner });
  }
}
