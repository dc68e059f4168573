/**
 * @module shim/sandbox: the CRI pod sandbox ("pause") container, which Kubernetes runs
 * through the pod's runtime handler too. It is no VM: a placeholder process (`sleep
 * infinity`, in the pod netns when there is one) stands for it, so the sandbox task has a
 * pid, an exit and a Wait like any other. Its identity is recorded in the shim directory so
 * that `delete` after the server died ends it as well.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { NodeFs } from '../sys/index.js';
import { procId, signalProc } from '../vm/index.js';
import type { OciConfig } from './bundle.js';

/** The OCI annotation containerd's CRI plugin sets on a pod's sandbox container. */
export const CRI_CONTAINER_TYPE = 'io.kubernetes.cri.container-type';

export function isSandbox(oci: OciConfig): boolean {
  return oci.annotations?.[CRI_CONTAINER_TYPE] === 'sandbox';
}

export interface Sandbox {
  pid: number;
  /** Resolves with the exit status (code, or 128 + signal) when the placeholder ends. */
  exited: Promise<number>;
  kill(signal: number): void;
}

function recordFile(dir: string, vm: string): string {
  return join(dir, 'sandboxes', `${vm}.json`);
}

export async function startSandbox(dir: string, vm: string, netns: string | undefined): Promise<Sandbox> {
  const argv = netns === undefined ? ['sleep', 'infinity'] : ['nsenter', `--net=${netns}`, '--', 'sleep', 'infinity'];
  const p: ChildProcess = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: true });
  const exited = new Promise<number>((resolve) => p.once('exit', (code, sig) => resolve(code ?? 128 + (sig === null ? 0 : constants.signals[sig]))));
  await new Promise<void>((resolve, reject) => { p.once('spawn', () => resolve()); p.once('error', reject); });
  p.unref();
  const id = await procId(new NodeFs(), p.pid!);
  mkdirSync(join(dir, 'sandboxes'), { recursive: true, mode: 0o700 });
  writeFileSync(recordFile(dir, vm), JSON.stringify(id));
  return { pid: p.pid!, exited, kill: (signal) => { try { p.kill(signal); } catch { /* gone */ } } };
}

export function forgetSandbox(dir: string, vm: string): void {
  rmSync(recordFile(dir, vm), { force: true });
}

/** For `delete` after the server died: kills the recorded placeholder (if it is still the same process). True if there was one. */
export async function killRecordedSandbox(dir: string, vm: string): Promise<boolean> {
  let id: { pid: number; startTime: number };
  try { id = JSON.parse(readFileSync(recordFile(dir, vm), 'utf8')) as typeof id; } catch { return false; }
  await signalProc(new NodeFs(), id, 'SIGKILL').catch(() => false);
  forgetSandbox(dir, vm);
  return true;
}
