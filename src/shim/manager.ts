/**
 * @module shim/manager: the VM service the shim drives, on the shim's state root with the
 * pod-netns network wrapper: the daemon's DaemonService in the server (a supervisor per VM:
 * job queue, held QMP session, pidfd exit watcher, events), LocalService in `delete` (run
 * after the server died: one verb under the VM's lock, from the record alone).
 */
import { NodeFs, NodeProcessRunner, type ProcessRunner } from '../sys/index.js';
import { DaemonService, LocalService, StateStore, VmManager, realBackends, type VmPaths, type VmService } from '../vm/index.js';
import { podNetwork, type NetnsPort } from './netns.js';

export interface ShimVms {
  vms: VmService;
  netns: NetnsPort;
  paths(vm: string): VmPaths;
}

export function shimVms(stateRoot: string, runner: ProcessRunner = new NodeProcessRunner()): ShimVms {
  const fs = new NodeFs();
  const store = new StateStore(stateRoot, fs);
  const real = realBackends({ stateRoot });
  const { net, port } = podNetwork(runner, real.net);
  return { vms: new LocalService(new VmManager({ store, fs, backends: { ...real, net } })), netns: port, paths: (vm) => store.paths(vm) };
}

/** The server's service: it owns the state root while it runs (a second server is refused with VM_BUSY). */
export async function shimDaemon(stateRoot: string, socket: string, log: (msg: string) => void, runner: ProcessRunner = new NodeProcessRunner()): Promise<ShimVms & { daemon: DaemonService }> {
  let port: NetnsPort | undefined;
  const daemon = await DaemonService.open({
    stateDir: stateRoot, socket, log,
    wrapBackends: (b) => { const w = podNetwork(runner, b.net); port = w.port; return { ...b, net: w.net }; },
  });
  const store = new StateStore(stateRoot, new NodeFs());
  return { vms: daemon, daemon, netns: port!, paths: (vm) => store.paths(vm) };
}
