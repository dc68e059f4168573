/**
 * @module vm/migrate-nbd: disks that move with a migration (storage not shared). The target
 * exports its new, empty disks from QEMU's NBD server, which listens on a unix socket the
 * manager made in the VM's directory and passed as an fd; remote peers reach it only through
 * the manager's TCP listener, which checks the one-time token and then relays bytes. The
 * source mirrors each disk into an NBD node whose socket is one the manager connected.
 */
import { randomBytes } from 'node:crypto';
import { renameSync, rmSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { layerNode } from '../plan/index.js';
import { VmError } from './errors.js';
import { ACK, connectForMigration, GATE_LIMITS, readExactly, startReading, TOKEN_BYTES, tokenGate, type GateLimits, type MigrationAddress } from './migrate-link.js';
import type { QmpConn } from './ports.js';

/** Where the source reaches the target's exports, and each disk's export name. */
export interface NbdAddress extends MigrationAddress {
  exports: Record<string, string>;
}

const SERVER_FD = 'warden-nbd-server';
const exportName = (disk: string): string => `warden-${disk}`;
const mirrorNode = (disk: string): string => `warden-mirror-${disk}`;

/** A listening unix socket at `path` (made under a temporary name, renamed into place: Node unlinks the name it listened on when it closes). */
async function listenUnix(path: string): Promise<{ fd: number; server: Server }> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}`);
  rmSync(tmp, { force: true });
  const server = createServer();
  await new Promise<void>((res, rej) => { server.once('error', rej); server.listen({ path: tmp, backlog: 8 }, () => res()); });
  renameSync(tmp, path);
  const fd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number') throw new VmError('VM_MIGRATE_FAILED', `the NBD socket ${path} has no fd`, { context: { path } });
  return { fd, server };
}

/**
 * Target: QEMU's NBD server on a manager-made unix socket in `dir`, each disk exported
 * writable, and a TCP relay on `host` that admits only peers with the token. `close` stops
 * the relay and the server and removes the socket.
 */
export async function exportDisks(q: QmpConn, dir: string, host: string, disks: readonly string[], limits: GateLimits = GATE_LIMITS): Promise<{ address: NbdAddress; close(): Promise<void> }> {
  const path = join(dir, 'nbd.sock');
  const unix = await listenUnix(path);
  try {
    await q.execute('getfd', { fdname: SERVER_FD }, undefined, [unix.fd]);
  } finally {
    unix.server.close(); // QEMU listens on its copy; ours must not accept
  }
  await q.execute('nbd-server-start', { addr: { type: 'fd', data: { str: SERVER_FD } } }); // SocketAddressLegacy
  for (const d of disks) await q.execute('block-export-add', { type: 'nbd', id: exportName(d), 'node-name': layerNode(d, 0), name: exportName(d), writable: true });
  const token = randomBytes(TOKEN_BYTES);
  const links = new Set<Socket>();
  const gate = tokenGate(token, limits, (s) => {
    links.add(s);
    s.once('close', () => links.delete(s));
    void relayToNbd(s, path, links, limits.authMs).catch(() => s.destroy());
  });
  const relay = createServer({ pauseOnConnect: true }, gate.onConnection);
  await new Promise<void>((res, rej) => { relay.once('error', rej); relay.listen({ host, port: 0 }, () => res()); });
  const port = (relay.address() as AddressInfo).port;
  return {
    address: { host, port, token: token.toString('hex'), exports: Object.fromEntries(disks.map((d) => [d, exportName(d)])) },
    async close() {
      relay.close();
      gate.destroyPending();
      for (const s of links) s.destroy();
      await q.execute('nbd-server-stop').catch(() => undefined);
      rmSync(path, { force: true });
    },
  };
}

/** After the token (checked by the gate): the answer, the peer's go byte (it has stopped reading), then bytes both ways to QEMU's NBD server. */
async function relayToNbd(s: Socket, path: string, links: Set<Socket>, goMs: number): Promise<void> {
  s.write(ACK);
  await readExactly(s, ACK.length, goMs);
  const nbd = connect({ path });
  links.add(nbd);
  nbd.once('close', () => { links.delete(nbd); s.destroy(); });
  s.once('close', () => nbd.destroy());
  nbd.on('error', () => s.destroy());
  s.on('error', () => nbd.destroy());
  s.pipe(nbd);
  nbd.pipe(s);
  startReading(s);
}

/** One disk being mirrored to the target. */
export interface Mirror { disk: string; job: string; node: string }

/**
 * Source: for each disk, an NBD node on a socket the manager connected to the target's relay,
 * and blockdev-mirror (sync full) of the disk's top layer into it; resolves once every job
 * is ready (the copies are in step, and writes go to both from then on).
 */
export async function mirrorDisks(q: QmpConn, nbd: NbdAddress, disks: readonly string[], onProgress: (done: number, total: number) => void): Promise<Mirror[]> {
  const mirrors: Mirror[] = [];
  try {
    for (const disk of disks) {
      const fdname = `warden-nbd-${disk}`;
      const end = await connectForMigration(nbd, 10_000, { go: true });
      try {
        await q.execute('getfd', { fdname }, undefined, [end.fd]);
      } finally {
        end.close();
      }
      const node = mirrorNode(disk);
      await q.execute('blockdev-add', { driver: 'nbd', 'node-name': node, server: { type: 'fd', str: fdname }, export: nbd.exports[disk] ?? exportName(disk) });
      mirrors.push({ disk, job: node, node });
      await q.execute('blockdev-mirror', { 'job-id': node, device: layerNode(disk, 0), target: node, sync: 'full' });
    }
    await untilReady(q, mirrors, onProgress);
    return mirrors;
  } catch (err) {
    await dropMirrors(q, mirrors);
    throw err;
  }
}

async function untilReady(q: QmpConn, mirrors: readonly Mirror[], onProgress: (done: number, total: number) => void): Promise<void> {
  for (;;) {
    const jobs = (await q.execute('query-block-jobs')) as Array<{ device: string; ready?: boolean; offset: number; len: number; status?: string }>;
    const mine = jobs.filter((j) => mirrors.some((m) => m.job === j.device));
    if (mine.length < mirrors.length) throw new VmError('VM_MIGRATE_FAILED', `a disk mirror ended before it was ready (${mirrors.map((m) => m.disk).join(', ')})`, { context: { jobs } });
    onProgress(mine.reduce((a, j) => a + j.offset, 0), mine.reduce((a, j) => a + j.len, 0));
    if (mine.every((j) => j.ready === true)) return;
    await sleep(200);
  }
}

/**
 * Ends the mirrors without switching the VM's disks over (block-job-cancel of a ready job
 * completes it with the target in step), waits until they are gone, and removes the NBD nodes.
 * Called at pre-switchover (vCPUs stopped: nothing writes), or on failure.
 */
export async function dropMirrors(q: QmpConn, mirrors: readonly Mirror[], o: { force?: boolean } = {}): Promise<void> {
  for (const m of mirrors) await q.execute('block-job-cancel', { device: m.job, ...(o.force === true ? { force: true } : {}) }).catch(() => undefined);
  for (let i = 0; i < 300; i++) {
    const jobs = (await q.execute('query-block-jobs').catch(() => [])) as Array<{ device: string }>;
    if (!jobs.some((j) => mirrors.some((m) => m.job === j.device))) break;
    await sleep(100);
  }
  for (const m of mirrors) await q.execute('blockdev-del', { 'node-name': m.node }).catch(() => undefined);
}
