/** @module plan/scope: the host-wide name of a VM (its jail, cgroup and TAP devices' basis): the VM's name, plus its state root's id when the facts carry one. */
import { sha256Hex } from '../sys/sha256.js';

/** The longest jail or cgroup name the jailer takes (jail/paths NAME_PATTERN). */
const MAX_NAME = 63;

/**
 * `vm` alone without a scope (plans without one keep their names); else `vm-scope`, and a VM
 * name too long for that is cut and given 8 hex of its hash, so two long names stay apart.
 */
export function hostWideName(vm: string, scope?: string): string {
  if (scope === undefined || scope === '') return vm;
  const name = `${vm}-${scope}`;
  if (name.length <= MAX_NAME) return name;
  const hash = sha256Hex(vm).slice(0, 8);
  return `${vm.slice(0, MAX_NAME - scope.length - hash.length - 2)}-${hash}-${scope}`;
}
