/**
 * @module test/net/ovs: a private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace
 * datapath) inside a test netns, with its db, sockets, logs and pidfiles in /tmp/warden-net-*,
 * stopped and removed when the test ends.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { nsRun, type Cleanups } from './netns.js';

const SCHEMA = '/usr/share/openvswitch/vswitch.ovsschema';

export function ovsSkipReason(): string | undefined {
  for (const tool of ['ovsdb-tool', 'ovsdb-server', 'ovs-vswitchd', 'ovs-vsctl']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (Debian: openvswitch-switch)`;
  }
  if (!existsSync(SCHEMA)) return `${SCHEMA} is missing`;
  return undefined;
}

/** Running and not a zombie (PID 1 here may not reap the detached daemons promptly). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function stop(dir: string): void {
  for (const pidfile of ['ovs-vswitchd.pid', 'ovsdb-server.pid']) {
    const path = join(dir, pidfile);
    if (!existsSync(path)) continue;
    const pid = Number.parseInt(readFileSync(path, 'utf8'), 10);
    if (!Number.isInteger(pid) || pid <= 1) continue;
    try { process.kill(pid, 'SIGTERM'); } catch { continue; }
    for (let i = 0; i < 100 && alive(pid); i++) spawnSync('sleep', ['0.02']);
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts the daemons in `ns` and creates the OVS bridge `bridge` (datapath_type=netdev); returns
 * the db socket path. Their files go in a fresh `${tmpPrefix}XXXXXX` directory.
 */
export function startPrivateOvs(t: Cleanups, ns: string, bridge: string, tmpPrefix = '/tmp/warden-net-'): { db: string; dir: string } {
  const dir = mkdtempSync(tmpPrefix);
  t.after(() => stop(dir));
  const env = ['env', `OVS_RUNDIR=${dir}`, `OVS_LOGDIR=${dir}`, `OVS_DBDIR=${dir}`];
  const db = join(dir, 'db.sock');
  const r = spawnSync('ovsdb-tool', ['create', join(dir, 'conf.db'), SCHEMA], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ovsdb-tool create: ${r.stderr}`);
  nsRun(ns, [...env, 'ovsdb-server', join(dir, 'conf.db'), `--remote=punix:${db}`, `--pidfile=${join(dir, 'ovsdb-server.pid')}`,
    `--unixctl=${join(dir, 'ovsdb-server.ctl')}`, `--log-file=${join(dir, 'ovsdb-server.log')}`, '--detach']);
  nsRun(ns, ['ovs-vsctl', `--db=unix:${db}`, '--no-wait', 'init']);
  nsRun(ns, [...env, 'ovs-vswitchd', `unix:${db}`, `--pidfile=${join(dir, 'ovs-vswitchd.pid')}`,
    `--unixctl=${join(dir, 'ovs-vswitchd.ctl')}`, `--log-file=${join(dir, 'ovs-vswitchd.log')}`, '--detach']);
  nsRun(ns, ['ovs-vsctl', `--db=unix:${db}`, '--timeout=20', 'add-br', bridge, '--', 'set', 'bridge', bridge, 'datapath_type=netdev']);
  nsRun(ns, ['ip', 'link', 'set', bridge, 'up']);
  return { db, dir };
}
