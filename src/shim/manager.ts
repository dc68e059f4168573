/**
 * @module shim/manager: the VM service the shim drives: warden's VmService (LocalService over
 * the real backends today; the daemon's DaemonService implements the same interface) on the
 * shim's state root, with the pod-netns network wrapper, and where each VM's files are.
 */
import { NodeFs, NodeProcessRunner, type ProcessRunner } from '../sys/index.js';
import { LocalService, StateStore, VmManager, realBackends, type VmPaths, type VmService } from '../vm/index.js';
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
