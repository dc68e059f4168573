/**
 * @module shim/stats: a task's Stats from the counters of its jail's cgroups, as containerd's
 * cgroup v1 Metrics (io.containerd.cgroups.v1.Metrics, what `ctr task metrics` decodes) or,
 * on a unified hierarchy, the v2 one (io.containerd.cgroups.v2.Metrics).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function num(file: string): number | undefined {
  try {
    const v = readFileSync(file, 'utf8').trim();
    return v === 'max' ? undefined : Number(v.split(/\s+/)[0]);
  } catch {
    return undefined;
  }
}

function keyed(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const l of readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = l.split(/\s+/);
      if (k && v) out[k] = Number(v);
    }
  } catch { /* no such counter */ }
  return out;
}

/** The cgroup directory among `dirs` in hierarchy `ctl` (v1 paths look like /sys/fs/cgroup/CTL[,CTL]/.../NAME). */
function v1Dir(dirs: readonly string[], ctl: string): string | undefined {
  return dirs.find((d) => d.split('/').some((part) => part.split(',').includes(ctl)) && existsSync(d));
}

export interface MetricsAny {
  typeName: string;
  value: Record<string, unknown>;
}

export function cgroupMetrics(dirs: readonly string[]): MetricsAny {
  const unified = dirs.find((d) => existsSync(join(d, 'cgroup.controllers')) && existsSync(join(d, 'memory.current')));
  if (unified !== undefined) {
    const cpu = keyed(join(unified, 'cpu.stat'));
    return {
      typeName: 'io.containerd.cgroups.v2.Metrics',
      value: {
        pids: { current: num(join(unified, 'pids.current')) ?? 0, limit: num(join(unified, 'pids.max')) ?? 0 },
        cpu: { usageUsec: cpu['usage_usec'] ?? 0, userUsec: cpu['user_usec'] ?? 0, systemUsec: cpu['system_usec'] ?? 0 },
        memory: { usage: num(join(unified, 'memory.current')) ?? 0, usageLimit: num(join(unified, 'memory.max')) ?? 0 },
      },
    };
  }
  const mem = v1Dir(dirs, 'memory');
  const cpu = v1Dir(dirs, 'cpuacct');
  const pids = v1Dir(dirs, 'pids');
  const ms = mem === undefined ? {} : keyed(join(mem, 'memory.stat'));
  return {
    typeName: 'io.containerd.cgroups.v1.Metrics',
    value: {
      ...(pids === undefined ? {} : { pids: { current: num(join(pids, 'pids.current')) ?? 0, limit: num(join(pids, 'pids.max')) ?? 0 } }),
      ...(cpu === undefined ? {} : { cpu: { usage: { total: num(join(cpu, 'cpuacct.usage')) ?? 0, user: num(join(cpu, 'cpuacct.usage_user')) ?? 0, kernel: num(join(cpu, 'cpuacct.usage_sys')) ?? 0 } } }),
      ...(mem === undefined ? {} : {
        memory: {
          cache: ms['cache'] ?? 0, rss: ms['rss'] ?? 0, mappedFile: ms['mapped_file'] ?? 0,
          usage: { usage: num(join(mem, 'memory.usage_in_bytes')) ?? 0, max: num(join(mem, 'memory.max_usage_in_bytes')) ?? 0,
            limit: num(join(mem, 'memory.limit_in_bytes')) ?? 0, failcnt: num(join(mem, 'memory.failcnt')) ?? 0 },
        },
        memoryOomControl: { oomKill: keyed(join(mem, 'memory.oom_control'))['oom_kill'] ?? 0 },
      }),
    },
  };
}
