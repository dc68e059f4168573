/** @module plan/types: the planner's input facts and its output, the Plan the lifecycle executes. */
import type { ImageChain } from '../image/index.js';
import type { JailSpec } from '../jail/index.js';
import type { HostAction } from '../net/index.js';
import type { ProgramView, QemuCaps } from '../qemu/index.js';

/** Facts gathered before planning (never by the planner). Paths are absolute host paths. */
export interface Facts {
  qemu: QemuCaps;
  /** Whether KVM works here (accel: auto resolves from it; detection is the lifecycle's job). */
  kvmUsable: boolean;
  /** Each disk's chain by disk name, top layer first (from the image prober). */
  chains: Record<string, ImageChain>;
  /**
   * Who QEMU runs as: a fixed uid/gid, or a uid leased from the jailer's range when it
   * launches (the leased one is a runtime fact of the run record, not of the plan).
   */
  identity: { uid: number; gid: number } | { lease: { first: number; last: number } };
  paths: {
    /** The VM's state directory (sockets, logs, vars live here). */
    stateDir: string;
    qmpSocket: string;
    serialSocket: string;
    serialLog: string;
    /** The per-VM writable copy of the UEFI variable store (firmware: uefi). */
    uefiVars: string;
    /** The VNC socket the manager listens on (vnc: true). */
    vncSocket: string;
    /** The guest agent's socket (guestAgent: true); default <stateDir>/qga.sock. */
    guestAgentSocket?: string;
    /** The cloud-init seed volume (cloudInit); default <stateDir>/cidata.iso. */
    cloudInitSeed?: string;
  };
  /**
   * The firmware pair on this host that fits the spec (firmware: uefi): OVMF's code, and the
   * variable-store template each VM's own vars file is first copied from. `secureBoot` says
   * whether this is the secure-boot build with Microsoft's keys enrolled.
   */
  firmware?: { uefiCode: string; uefiVarsTemplate: string; secureBoot?: boolean };
  /** The host port start chose for each forward with host: 0, by spec path (networks[i].forwards[k]). */
  forwardPorts?: Record<string, number>;
  /** Host features that are optional (no vhost-net here, for instance). */
  host?: { vhostNet?: boolean };
  /** Helper programs found on this host (absent: not installed), with their views. */
  helpers?: { passt?: ProgramView; swtpm?: ProgramView; virtiofsd?: ProgramView; unshare?: ProgramView };
  /** Each share's directory (by index in spec.shares; null: it failed, a located issue says why): canonical path, owner uid/gid. */
  shares?: Array<{ path: string; uid: number; gid: number } | null>;
  /** `defer`: QEMU waits for a migration stream the manager passes after launch (warden restore: -incoming defer, then migrate-incoming fd:). */
  incoming?: 'defer';
  /**
   * A short id of the state root the VM runs under (vm/facts hostScope). Host-wide names (jail,
   * cgroup, TAP devices) carry it, so one VM name can run under two state roots at once (a
   * migration between two daemons on one host). Absent: the names are the VM's alone.
   */
  scope?: string;
}

export type OpenFlag = 'O_RDONLY' | 'O_WRONLY' | 'O_RDWR' | 'O_DIRECT' | 'O_CREAT' | 'O_APPEND' | 'O_CLOEXEC';

interface FdBase {
  /** The same name as in JailSpec.fds. */
  name: string;
  /** The fd number QEMU sees: 3 + the index in Plan.fds / JailSpec.fds. */
  target: number;
  /** The spec path that asked for this fd. */
  from: string;
}

export type PlannedFd =
  /**
   * A file the manager opens with exactly these flags; fdset set when QEMU reaches it as
   * /dev/fdset/N. With `template`, a file that does not exist yet is first made as a copy
   * of it (the per-VM UEFI variable store).
   */
  | (FdBase & { kind: 'file'; path: string; flags: OpenFlag[]; fdset?: number; template?: string })
  /**
   * A read-only snapshot of a file in a sealed memfd the manager fills, for options QEMU
   * opens with plain open() (-kernel, -initrd): QEMU reads it as /proc/self/fd/N, which
   * works whatever the file's mode and directory and does not change if the file does.
   */
  | (FdBase & { kind: 'sealed-copy'; path: string })
  /**
   * The write end of a pipe whose other end the manager's log writer (warden-logd) drains
   * into `path`, rotating it to `path`.1 at `capBytes`: QEMU never holds the log file.
   */
  | (FdBase & { kind: 'log'; path: string; capBytes: number; fdset?: number })
  /** A unix socket the manager creates, binds, listens on, and passes (QMP monitor, serial console). */
  | (FdBase & { kind: 'unix-listen'; path: string })
  /** An fd the net module opens while performing hostActions[action] (TAP queue, macvtap, vhost-net). */
  | (FdBase & { kind: 'host-action'; action: number })
  /**
   * One end of an AF_UNIX socketpair the manager creates between QEMU and a helper: the
   * end named in a helper's fds is that helper's, the same `pair` in QEMU's fds is QEMU's.
   * helperListens: the helper's end is a listening socket with QEMU's end already queued on
   * it (virtiofsd --fd accepts), not a socketpair.
   */
  | (FdBase & { kind: 'socketpair'; pair: string; helperListens?: boolean })
  /**
   * A directory of the VM's own (helper state, e.g. the TPM's) the manager makes (root, 0700)
   * and opens; a helper reaches it only by this fd (/proc/self/fd/N), and owns it while it runs.
   */
  | (FdBase & { kind: 'state-dir'; path: string });

export type ManifestKind = 'file' | 'socket' | 'device' | 'tap' | 'macvtap' | 'bridge-port' | 'cgroup' | 'uid' | 'netns' | 'port' | 'mount' | 'helper';

/** One resource the VM implies: what, how it is accessed, and which spec field asked for it. */
export interface ManifestEntry {
  kind: ManifestKind;
  resource: string;
  access: string;
  from: string;
  note?: string;
}

export interface ArgTrace {
  arg: string;
  /** The spec path it came from (e.g. disks[0].image), or "(base)" for fixed hardening options. */
  from: string;
}

/** A helper program (passt ...) that serves one spec item, in a jail of its own, started before QEMU and stopped after it. */
export interface HelperPlan {
  kind: 'passt' | 'swtpm' | 'virtiofsd';
  /** The spec field it serves (networks[0]). */
  from: string;
  jail: JailSpec;
  /** The helper's fds (3 + index), the same shapes as QEMU's. */
  fds: PlannedFd[];
}

export interface Plan {
  /** argv[0] is the QEMU binary path. */
  argv: string[];
  argvTrace: ArgTrace[];
  fds: PlannedFd[];
  jail: JailSpec;
  hostActions: HostAction[];
  manifest: ManifestEntry[];
  /** Helpers in their own jails, in start order (empty when none). */
  helpers: HelperPlan[];
}
