/**
 * @module qemu/probe: asks a QEMU binary for its capabilities over QMP on stdio, with no
 * machine, no devices and no guest (`-machine none -S`). Deliberately minimal: a fixed
 * script of commands written at once, replies read in order; the full client is src/qmp.
 */
import type { ProcessRunner } from '../sys/index.js';
import { QemuProbeError } from './errors.js';
import type { QapiEntry, QemuCaps, QemuMachine } from './types.js';

/**
 * Devices whose properties are gathered (device-list-properties), so -device objects can be
 * checked like the QAPI-typed ones: the drivers the planner may emit. A driver missing from
 * the binary answers with an error, which only means "no properties known".
 */
export const PROPERTY_DEVICES = [
  'isa-serial', 'virtio-blk-pci', 'virtio-scsi-pci', 'scsi-hd', 'scsi-cd', 'ich9-ahci', 'ide-hd', 'ide-cd',
  'virtio-net-pci', 'e1000e', 'rtl8139', 'virtio-rng-pci', 'virtio-balloon-pci', 'VGA', 'virtio-serial-pci', 'virtserialport',
] as const;

const CORE = [
  { execute: 'qmp_capabilities' },
  { execute: 'query-version' },
  { execute: 'query-machines' },
  { execute: 'qom-list-types', arguments: { implements: 'device', abstract: false } },
  { execute: 'query-qmp-schema' },
];
const SCRIPT: Array<{ execute: string; arguments?: Record<string, unknown> }> = [
  ...CORE,
  ...PROPERTY_DEVICES.map((typename) => ({ execute: 'device-list-properties', arguments: { typename } })),
  // Answers with an error when QEMU was built without seccomp (then -sandbox does not exist).
  { execute: 'query-command-line-options', arguments: { option: 'sandbox' } },
  { execute: 'quit' },
];

/** The argv used to probe; -no-user-config and -nodefaults keep host config files out of the answer. */
export function probeArgv(binary: string): string[] {
  return [binary, '-S', '-nodefaults', '-no-user-config', '-machine', 'none', '-display', 'none', '-qmp', 'stdio'];
}

/** Runs the probe and returns the binary's capabilities. */
export async function probeQemu(runner: ProcessRunner, binary: string, timeoutMs = 60_000): Promise<QemuCaps> {
  const queries = SCRIPT.slice(0, -1);
  const input = queries.map((c) => JSON.stringify(c)).join('\n') + '\n';
  let res;
  try {
    // `quit` goes only once every other answer has been read: QEMU exits on it without
    // flushing the replies still in its monitor's buffer (a 186 KB schema does not fit a pipe),
    // which under load, with this process slow to read, left a probe with 7 of 23 answers.
    res = await runner.run(probeArgv(binary), {
      input, timeoutMs,
      followUp: { after: (out) => answers(out) >= queries.length, input: `${JSON.stringify(SCRIPT[SCRIPT.length - 1])}\n` },
    });
  } catch (cause) {
    throw new QemuProbeError('HOST_QEMU_MISSING', `starting QEMU binary ${binary} to read its capabilities failed`, { cause, context: { binary }, suggestions: ['install qemu-system-x86 or pass --qemu PATH'] });
  }
  const replies = parseReplies(res.stdout, binary, res.stderr);
  if (replies.length < SCRIPT.length - 1 || replies.slice(0, CORE.length).some((r) => 'error' in r)) {
    const bad = replies.findIndex((r) => 'error' in r);
    if (bad >= 0 && bad < CORE.length) {
      throw new QemuProbeError('HOST_QEMU_PROBE', `QEMU binary ${binary} refused ${SCRIPT[bad]!.execute}: ${JSON.stringify(replies[bad]!['error'])}`, { context: { binary, command: SCRIPT[bad]!.execute } });
    }
    const killed = res.signal === 'SIGKILL' ? ` (killed after ${timeoutMs} ms)` : '';
    throw new QemuProbeError('HOST_QEMU_PROBE', `QEMU binary ${binary} answered ${replies.length} of ${SCRIPT.length} capability queries (exit ${res.code ?? res.signal}${killed})`, { context: { binary, stderr: res.stderr.slice(0, 2000) } });
  }
  const caps = toCaps(binary, replies.map((r) => r['return']));
  caps.sandbox = 'return' in (replies[CORE.length + PROPERTY_DEVICES.length] ?? {});
  return caps;
}

/** How many whole replies (lines opening with "return" or "error") the output holds so far. */
function answers(stdout: string): number {
  let n = 0;
  const whole = stdout.slice(0, stdout.lastIndexOf('\n') + 1);
  for (const line of whole.split('\n')) if (line.startsWith('{"return"') || line.startsWith('{"error"')) n++;
  return n;
}

/** Replies in order, each {return} or {error} (greeting and events skipped). */
function parseReplies(stdout: string, binary: string, stderr: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of stdout.split('\n')) {
    if (line.trim() === '') continue;
    let msg: Record<string, unknown>;
    try { msg = JSON.parse(line) as Record<string, unknown>; } catch (cause) {
      throw new QemuProbeError('HOST_QEMU_PROBE', `QEMU binary ${binary} wrote a line that is not JSON while probing`, { cause, context: { binary, line: line.slice(0, 200), stderr: stderr.slice(0, 2000) } });
    }
    if ('return' in msg || 'error' in msg) out.push(msg);
  }
  return out;
}

interface RawMachine { name: string; alias?: string; 'is-default'?: boolean; 'cpu-max': number }

function toCaps(binary: string, r: unknown[]): QemuCaps {
  const v = r[1] as { qemu: { major: number; minor: number; micro: number }; package: string };
  const machines: QemuMachine[] = (r[2] as RawMachine[]).map((m) => ({
    name: m.name,
    ...(m.alias === undefined ? {} : { alias: m.alias }),
    ...(m['is-default'] === true ? { isDefault: true } : {}),
    cpuMax: m['cpu-max'],
  })).sort((a, b) => a.name.localeCompare(b.name));
  const devices = (r[3] as Array<{ name: string }>).map((t) => t.name).sort();
  return {
    binary,
    version: { major: v.qemu.major, minor: v.qemu.minor, micro: v.qemu.micro, package: v.package },
    machines,
    devices,
    schema: r[4] as QapiEntry[],
    deviceProps: Object.fromEntries(PROPERTY_DEVICES.flatMap((d, i) => {
      const props = r[CORE.length + i] as Array<{ name: string }> | undefined;
      return props === undefined ? [] : [[d, props.map((p) => p.name).sort()]];
    })),
  };
}
