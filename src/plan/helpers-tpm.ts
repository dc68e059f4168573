/**
 * @module plan/helpers-tpm: `tpm: true` as swtpm in a jail of its own, tied to QEMU by one
 * socketpair (swtpm's control channel; QEMU sends the data channel's fd over it itself),
 * its state in the VM's directory, reached by swtpm only through a directory fd.
 */
import type { JailSpec } from '../jail/index.js';
import type { Spec } from '../spec/index.js';
import type { PlanBuilder } from './builder.js';
import { helperJailName, programMounts } from './helpers.js';
import type { Facts, PlannedFd } from './types.js';
import { hostWideName } from './scope.js';

export const SWTPM_BINARY = '/usr/bin/swtpm';

const MiB = 1024 * 1024;
/** swtpm's needs: libtpms' state is a few hundred KiB; it is single-threaded (a few pids for OpenSSL's). */
const SWTPM_LIMITS = { memoryBytes: 64 * MiB, pids: 8, nofile: 64 };

/** The TPM version the spec asks for, or null for none (only 2.0: QEMU's CRB interface is 2.0-only). */
export function tpmVersion(spec: Spec): '2.0' | null {
  const t = spec.tpm;
  if (t === undefined || t === false) return null;
  return '2.0';
}

/** Where the VM's TPM state lives: its own directory in the VM's state directory (removed with the VM). */
export function tpmStateDir(facts: Facts): string {
  return `${facts.paths.stateDir}/tpm`;
}

/**
 * -chardev on QEMU's end of the pair, -tpmdev emulator on it, tpm-crb (q35) or tpm-tis (pc);
 * swtpm with `--ctrl type=unixio,clientfd=3` and `--tpmstate dir=/proc/self/fd/4`, in its own
 * jail: leased uid, no capabilities, empty network namespace, a view of its binary and
 * libraries only.
 */
export function planTpm(spec: Spec, facts: Facts, b: PlanBuilder): void {
  if (tpmVersion(spec) === null) return;
  const view = facts.helpers?.swtpm;
  if (view === undefined) {
    b.issue({ code: 'PLAN_MISSING_FACT', from: 'tpm', message: `tpm runs swtpm in a jail of its own, but swtpm is not installed on this host (${SWTPM_BINARY})`, suggestion: 'install the swtpm package, or drop tpm from the spec' });
    return;
  }
  const pair = 'swtpm-ctrl';
  const qemuFd = b.socketPair('tpm', pair, pair);
  b.arg('tpm', '-chardev', `socket,id=chrtpm,fd=${qemuFd}`);
  b.arg('tpm', '-tpmdev', 'emulator,id=tpm0,chardev=chrtpm');
  const model = spec.machine === 'q35' ? 'tpm-crb' : 'tpm-tis';
  b.device('tpm', { driver: model, tpmdev: 'tpm0', id: 'tpm0' });
  const state = tpmStateDir(facts);
  const name = helperJailName(hostWideName(spec.name, facts.scope), 'swtpm', 'tpm0');
  const fds: PlannedFd[] = [{ kind: 'socketpair', name: pair, pair, target: 3, from: 'tpm' }, { kind: 'state-dir', name: 'tpm-state', path: state, target: 4, from: 'tpm' }];
  const jail: JailSpec = {
    name,
    identity: { lease: true },
    network: { mode: 'none' },
    mounts: programMounts(view),
    devices: [],
    fds: [{ name: pair, target: 3 }, { name: 'tpm-state', target: 4 }],
    cgroup: { name, memoryBytes: SWTPM_LIMITS.memoryBytes, pids: SWTPM_LIMITS.pids },
    rlimits: { nofile: SWTPM_LIMITS.nofile, core: 0 },
    env: {},
    cwd: '/',
    // The control channel is fd 3 (QEMU's peer); swtpm exits when QEMU's end closes. Its errors go to stderr (qemu.log); --log fd=2 makes it exit silently.
    argv: [view.binary.path, 'socket', '--tpm2', '--ctrl', 'type=unixio,clientfd=3', '--tpmstate', 'dir=/proc/self/fd/4,mode=0600'],
    // Landlock on top (swtpm adds its own seccomp): read/execute its view, write only beneath the
    // state directory, whose rule the exec helper takes from the fd (the magic link resolves to it).
    landlock: { readOnly: ['/usr'], readWrite: ['/proc/self/fd/4'] },
  };
  b.helpers.push({ kind: 'swtpm', from: 'tpm', jail, fds });
  b.note('helper', name, 'runs', 'tpm', `swtpm (TPM 2.0, ${model}) in its own jail: leased uid, no capabilities, own mount namespace (its binary and libraries), no network, Landlock (writes only beneath its state directory); memory ${SWTPM_LIMITS.memoryBytes} bytes, pids ${SWTPM_LIMITS.pids}`);
  b.note('socket', `socketpair ${pair}`, `QEMU fd ${qemuFd}, swtpm fd 3`, 'tpm', 'swtpm\'s control channel (-chardev socket,fd=); QEMU passes the data channel\'s fd over it');
  b.note('file', state, 'rw (swtpm, by fd 4)', 'tpm', 'the TPM\'s state: made at the first start, owned by swtpm\'s leased uid while it runs and by root otherwise, kept across restarts, removed with the VM');
  for (const f of [view.binary, ...view.libraries]) b.note('mount', `${name}:${f.path}`, 'ro', 'tpm', f.path === view.binary.path ? 'the swtpm binary' : 'shared library of swtpm');
}
