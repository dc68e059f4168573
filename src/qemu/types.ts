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
}
