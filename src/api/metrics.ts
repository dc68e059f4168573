/** @module api/metrics: /v1/metrics in the Prometheus text format: VM phases, per-VM CPU and memory of QEMU (from /proc), the daemon's own counters. */
import { readFileSync } from 'node:fs';
import { PHASES, type ListEntry } from '../vm/index.js';

export interface DaemonCounters {
  requests: Map<string, number>;
  eventsDropped: number;
  sseClients: () => number;
}

const CLK_TCK = 100;
const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function procFacts(pid: number): { cpu: number; rss: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const rss = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { cpu: (Number(f[11]) + Number(f[12])) / CLK_TCK, rss: Number(rss?.[1] ?? 0) * 1024 };
  } catch {
    return null;
  }
}

export function renderMetrics(vms: readonly ListEntry[], c: DaemonCounters): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, rows: string[]): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...rows);
  };
  const phases = new Map<string, number>(PHASES.map((p) => [p, 0]));
  for (const v of vms) if (v.record) phases.set(v.record.phase, (phases.get(v.record.phase) ?? 0) + 1);
  metric('warden_vms', 'gauge', 'VMs by phase', [...phases].map(([p, n]) => `warden_vms{phase="${p}"} ${n}`));
  metric('warden_vm_info', 'gauge', 'one series per VM with its phase and accelerator', vms.flatMap((v) => v.record
    ? [`warden_vm_info{vm="${esc(v.name)}",phase="${v.record.phase}",accel="${v.record.run?.accel ?? ''}"} 1`] : []));
  const live = vms.flatMap((v) => (v.record?.run ? [{ name: v.name, facts: procFacts(v.record.run.qemu.pid) }] : []));
  metric('warden_vm_cpu_seconds_total', 'counter', 'CPU time of the VM\'s QEMU process', live.flatMap((v) => (v.facts ? [`warden_vm_cpu_seconds_total{vm="${esc(v.name)}"} ${v.facts.cpu}`] : [])));
  metric('warden_vm_memory_bytes', 'gauge', 'resident memory of the VM\'s QEMU process', live.flatMap((v) => (v.facts ? [`warden_vm_memory_bytes{vm="${esc(v.name)}"} ${v.facts.rss}`] : [])));
  metric('warden_api_requests_total', 'counter', 'API requests by route and status', [...c.requests].map(([k, n]) => `warden_api_requests_total{${k}} ${n}`));
  metric('warden_events_clients', 'gauge', 'event stream clients', [`warden_events_clients ${c.sseClients()}`]);
  metric('warden_events_dropped_clients_total', 'counter', 'event stream clients dropped for reading too slowly', [`warden_events_dropped_clients_total ${c.eventsDropped}`]);
  metric('warden_daemon_resident_bytes', 'gauge', 'resident memory of the daemon', [`warden_daemon_resident_bytes ${process.memoryUsage.rss()}`]);
  return `${out.join('\n')}\n`;
}
