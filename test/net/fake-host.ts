/**
 * @module test/net/fake-host: for fault injection only. A stand-in for the kernel's link
 * table (the LinkPort src/net talks netlink through) and for ovsdb (its OvsdbPort), just
 * enough for src/net's executor: TAPs that vanish with their last fd, macvtaps that do not,
 * ifindexes that never repeat, and rules that make chosen calls fail. Real behaviour is
 * tested against the real kernel and a real ovsdb-server in test/net.
 */
import { LinkError, type LinkInfo, type LinkPort, type OvsdbPort } from '../../src/net/index.js';
import { constants } from 'node:os';

interface Link { ifindex: number; kind: string; mtu: number; persistent: boolean; master: number; up: boolean; alias?: string }

/** A call line matching the RegExp throws the Error (see `calls` for the lines). */
export type Rule = [RegExp, Error];

/** The LinkError the kernel's `errno` (by name) would give. */
export function linkError(request: string, code: keyof typeof constants.errno, detail?: string): LinkError {
  return new LinkError(request, constants.errno[code], detail);
}

export class FakeHost {
  /** name → link: the kernel's link table. */
  readonly table = new Map<string, Link>();
  /** OVS ports: name → bridge, and their interfaces' external-ids. */
  readonly ovsPorts = new Map<string, string>();
  readonly ovsIds = new Map<string, Record<string, string>>();
  /** Every port call, one line each: `get X`, `set X {...}`, `remove X`, `ovs addPort BR X` ... */
  readonly calls: string[] = [];
  readonly openFds = new Map<number, string>();
  private nextIfindex = 10;
  private nextFd = 100;

  constructor(private readonly rules: Rule[] = [], bridges: Record<string, string> = { br0: 'bridge' }, readonly ovsBridges: string[] = ['ovsbr']) {
    for (const [name, kind] of Object.entries(bridges)) this.add(name, kind, true);
  }

  add(name: string, kind: string, persistent: boolean): Link {
    const link: Link = { ifindex: this.nextIfindex++, kind, mtu: 1500, persistent, master: 0, up: false };
    this.table.set(name, link);
    return link;
  }

  private call(line: string): void {
    this.calls.push(line);
    const hit = this.rules.find(([re]) => re.test(line))?.[1];
    if (hit !== undefined) throw hit;
  }

  private nameOf(ifindex: number): string {
    const name = [...this.table].find(([, l]) => l.ifindex === ifindex)?.[0];
    if (name === undefined) throw linkError(`ifindex ${ifindex}`, 'ENODEV');
    return name;
  }

  private info(name: string, l: Link): LinkInfo {
    return { ifindex: l.ifindex, ifname: name, mtu: l.mtu, up: l.up, master: l.master, kind: l.kind, ...(l.alias === undefined ? {} : { alias: l.alias }) };
  }

  readonly links: LinkPort = {
    get: (name) => {
      this.call(`get ${name}`);
      const l = this.table.get(name);
      return l === undefined ? undefined : this.info(name, l);
    },
    list: () => {
      this.call('list');
      return [...this.table].map(([name, l]) => this.info(name, l));
    },
    set: (ifindex, change) => {
      const name = this.nameOf(ifindex);
      this.call(`set ${name} ${JSON.stringify(change)}`);
      const l = this.table.get(name)!;
      if (change.mtu !== undefined) l.mtu = change.mtu;
      if (change.master !== undefined) l.master = change.master;
      if (change.up !== undefined) l.up = change.up;
      if (change.alias !== undefined) l.alias = change.alias;
    },
    remove: (ifindex) => {
      const name = this.nameOf(ifindex);
      this.call(`remove ${name}`);
      this.table.delete(name);
    },
    addMacvtap: (r) => {
      this.call(`addMacvtap ${r.ifname} lower ${this.nameOf(r.lower)} mode ${r.mode}`);
      if (this.table.has(r.ifname)) throw linkError(`create ${r.ifname}`, 'EEXIST');
      this.add(r.ifname, 'macvtap', true);
    },
  };

  readonly ovsdb: OvsdbPort = {
    bridgeExists: async (t, bridge) => {
      this.call(`ovs ${t.db} bridgeExists ${bridge}`);
      return this.ovsBridges.includes(bridge);
    },
    addPort: async (t, p) => {
      this.call(`ovs ${t.db} addPort ${p.bridge} ${p.ifname}${p.vlan === undefined ? '' : ` tag ${p.vlan}`}`);
      this.ovsPorts.set(p.ifname, p.bridge);
      this.ovsIds.set(p.ifname, { ...p.externalIds });
    },
    delPort: async (t, ifname) => {
      this.call(`ovs ${t.db} delPort ${ifname}`);
      this.ovsPorts.delete(ifname);
      this.ovsIds.delete(ifname);
    },
    interfaces: async (t) => {
      this.call(`ovs ${t.db} interfaces`);
      return [...this.ovsPorts.keys()].map((name) => ({ name, externalIds: this.ovsIds.get(name) ?? {} }));
    },
  };

  /** The native addon's openTap/closeFd over this link table. */
  readonly native = {
    openTap: (name: string, queues: number) => {
      this.call(`openTap ${name}`);
      if (!this.table.has(name)) this.add(name, 'tun', false);
      const fds = Array.from({ length: queues }, () => this.nextFd++);
      for (const fd of fds) this.openFds.set(fd, name);
      return { name, fds };
    },
    /** TUNGETIFF: the link an fd from openTap or openDevice is attached to. */
    tapIfName: (fd: number): string => {
      const name = this.openFds.get(fd);
      if (name === undefined) throw Object.assign(new Error('EBADF'), { code: 'EBADF' });
      return name;
    },
    closeFd: (fd: number) => {
      const name = this.openFds.get(fd);
      this.openFds.delete(fd);
      const link = name === undefined ? undefined : this.table.get(name);
      if (link && !link.persistent && ![...this.openFds.values()].includes(name!)) this.table.delete(name!);
    },
  };

  /** /dev/tapN as devtmpfs has it: the macvtap whose ifindex is N. */
  readonly openDevice = (path: string): number => {
    const index = Number(/^\/dev\/tap(\d+)$/.exec(path)?.[1]);
    const name = [...this.table].find(([, l]) => l.ifindex === index)?.[0];
    if (name === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    const fd = this.nextFd++;
    this.openFds.set(fd, name);
    return fd;
  };

  /** Device names besides the preset bridges. */
  vmLinks(): string[] {
    return [...this.table.keys()].filter((n) => !['br0', 'ovsbr', 'eth0'].includes(n));
  }

  /** The ports, for an undo or cleanup call. */
  ports(): { links: LinkPort; ovsdb: OvsdbPort } {
    return { links: this.links, ovsdb: this.ovsdb };
  }
}
