/** @module qemu/types: what the planner may know about a QEMU binary (data only; gathered by probe.ts, cached per binary). */

/** One entry of query-qmp-schema (SchemaInfo), kept as QEMU reports it. */
export interface QapiEntry {
  name: string;
  'meta-type': 'builtin' | 'enum' | 'array' | 'object' | 'alternate' | 'command' | 'event';
  'json-type'?: string;
  values?: string[];
  members?: Array<{ name?: string; type: string; default?: unknown }>;
  'element-type'?: string;
  tag?: string;
  variants?: Array<{ case: string; type: string }>;
  'arg-type'?: string;
  'ret-type'?: string;
  features?: string[];
}

export interface QemuMachine {
  name: string;
  alias?: string;
  isDefault?: boolean;
  /** The highest vCPU count QEMU accepts for this machine. */
  cpuMax: number;
}

/**
 * A file QEMU (or its dynamic loader) opens by name: `path` is where it appears in QEMU's
 * view (the name QEMU asks for, in its host directory with symlinks resolved), `source`
 * the real file on the host that is bound there.
 */
export interface ViewFile {
  path: string;
  source: string;
}

/** A dynamically linked program's minimal view: the binary, its loader and libraries. */
export interface ProgramView {
  binary: ViewFile;
  /** Host symlinks the names below go through (merged /usr: /lib -> usr/lib), recreated in the view. */
  links: Array<{ path: string; linkTarget: string }>;
  /** The ELF interpreter and the binary's shared libraries (from ldd), in ldd's order. */
  libraries: ViewFile[];
}

/** What QEMU opens by name when it starts: the facts a minimal jail view is planned from. */
export interface QemuView extends ProgramView {
  /** Loadable modules (accel-tcg-x86_64 ...) by name, each with the libraries it needs beyond the binary's. */
  modules: Record<string, { file: ViewFile; libraries: ViewFile[] }>;
  /** QEMU's data directories in its search order (`-L help`), normalized. */
  dataDirs: string[];
  /** Firmware, option ROM and keymap files by the name QEMU asks for (bios-256k.bin, keymaps/en-us): the first hit in dataDirs. */
  dataFiles: Record<string, ViewFile>;
}

export interface QemuCaps {
  /** Absolute path of the binary these facts describe. */
  binary: string;
  version: { major: number; minor: number; micro: number; package: string };
  machines: QemuMachine[];
  /** Non-abstract QOM types implementing "device" (what -device accepts). */
  devices: string[];
  /** Whether -sandbox (seccomp) is built in; absent when unknown. */
  sandbox?: boolean;
  /** Properties of the devices the planner uses (device-list-properties), by driver; absent ones are not checked. */
  deviceProps?: Record<string, string[]>;
  /** The QAPI schema (query-qmp-schema); absent when not gathered, then schema checks are skipped. */
  schema?: QapiEntry[];
  /** The files QEMU opens by name (libraries, modules, data files); absent when not gathered. */
  view?: QemuView;
}
