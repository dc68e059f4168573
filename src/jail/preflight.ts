/** @module jail/preflight: what this host offers the jailer (root, cgroup version, Landlock ABI, tools), for a doctor or a planner's facts. */
import { execFileSync } from 'node:child_process';
import { NodeFs, type Fs } from '../sys/index.js';
import type { JailerConfig } from './config.js';
import { detectCgroupLayout } from './cgroup-fs.js';
import { checkTools } from './host-facts.js';

export interface JailHostReport {
  root: boolean;
  /** undefined when no usable hierarchy was found. */
  cgroupVersion?: 1 | 2;
  /** 0 when the kernel has no Landlock (the layer is then skipped unless landlockRequired). */
  landlockAbi: number;
  /** Problems that make launchJail fail here, each a sentence. */
  problems: string[];
}

export async function probeJailHost(config: JailerConfig, fs: Fs = new NodeFs()): Promise<JailHostReport> {
  const problems: string[] = [];
  const root = process.getuid?.() === 0;
  if (!root) problems.push('not running as root: the jailer needs it for the uid switch and cgroups');
  try { checkTools(config); } catch (e) { problems.push((e as Error).message); }
  let cgroupVersion: 1 | 2 | undefined;
  try { cgroupVersion = (await detectCgroupLayout(fs, config.mountsFile, config.cgroupVersion)).version; } catch (e) { problems.push((e as Error).message); }
  let landlockAbi = 0;
  try { landlockAbi = Number(execFileSync(config.helperPath, ['abi'], { encoding: 'utf8', timeout: 5000 }).trim()) || 0; } catch { landlockAbi = 0; }
  if (landlockAbi === 0 && config.landlockRequired) problems.push('the kernel has no Landlock, and landlockRequired is set');
  return { root, ...(cgroupVersion === undefined ? {} : { cgroupVersion }), landlockAbi, problems };
}
