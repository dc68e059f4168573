/** @module shim/manager: the VmManager the shim drives: warden's real backends on the shim's state root, with the pod-netns network wrapper. */
import { NodeFs, NodeProcessRunner, type ProcessRunner } from '../sys/index.js';
import { StateStore, VmManager, realBackends } from '../vm/index.js';
import { podNetwork, type NetnsPort } from './netns.js';

export function shimManager(stateRoot: string, runner: ProcessRunner = new NodeProcessRunner()): { manager: VmManager; netns: NetnsPort } {
  const fs = new NodeFs();
  const real = realBackends({ stateRoot });
  const { net, port } = podNetwork(runner, real.net);
  return { manager: new VmManager({ store: new StateStore(stateRoot, fs), fs, backends: { ...real, net } }), netns: port };
}
