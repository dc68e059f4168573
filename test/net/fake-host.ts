/**
 * @module test/net/fake-host: for fault injection only. A stand-in for the kernel's link
 * table and the `ip`/`ovs-vsctl` tools, just enough for src/net's executor: TAPs that vanish
 * with their last fd, macvtaps that do not, ifindexes that never repeat, and rules that make
 * chosen commands fail. Real behaviour is tested against the real kernel in test/net.
 */
import type { ProcessRunner, RunResult } from '../../src/sys/index.js';

interface Link { ifindex: number; kind: string; mtu: number; persistent: boolean }

export type Rule = [RegExp, Partial<RunResult> | Error];

const MISSING = (name: string): Partial<RunResult> => ({ code: 1, stderr: `Device "${name}" does not exist.\n` });

export class FakeHost {
  readonly links = new Map<string, Link>();
  readonly calls: string[] = [];
  readonly openFds = new Map<number, string>();
  private nextIfindex = 10;
  private nextFd = 100;

  constructor(private readonly rules: Rule[] = [], bridges: Record<string, string> = { br0: 'bridge' }) {
    for (const [name, kind] of Object.entries(bridges)) this.add(name, kind, true);
  }

  add(name: string, kind: string, persistent: boolean): Link {
    const link = { ifindex: this.nextIfindex++, kind, mtu: 1500, persistent };
    this.links.set(name, link);
    return link;
  }

  readonly runner: ProcessRunner = {
    run: async (argv) => {
      const line = argv.join(' ');
      this.calls.push(line);
      const hit = this.rules.find(([re]) => re.test(line))?.[1];
      if (hit instanceof Error) throw hit;
      return { code: 0, signal: null, stdout: '', stderr: '', ...(hit ?? this.answer(argv)) };
    },
  };

  private answer(argv: readonly string[]): Partial<RunResult> {
    const dev = argv[argv.indexOf('dev') + 1] ?? '';
    if (argv[0] === 'ip' && argv.includes('show') && argv.includes('dev')) {
      const l = this.links.get(dev);
      return l ? { stdout: JSON.stringify([{ ifname: dev, ifindex: l.ifindex, mtu: l.mtu, linkinfo: { info_kind: l.kind } }]) } : MISSING(dev);
    }
    if (argv[0] === 'ip' && argv.includes('delete')) return this.links.delete(dev) ? {} : MISSING(dev);
    if (argv[0] === 'ip' && argv.includes('add') && argv.includes('macvtap')) {
      this.add(argv[argv.indexOf('name') + 1]!, 'macvtap', true);
      return {};
    }
    if (argv[0] === 'ip' && argv.includes('set')) return this.links.has(dev) ? {} : MISSING(dev);
    return {};
  }

  /** The native addon's openTap/closeFd over this link table. */
  readonly native = {
    openTap: (name: string, queues: number) => {
      const fail = this.rules.find(([re]) => re.test(`openTap ${name}`))?.[1];
      if (fail instanceof Error) throw fail;
      if (!this.links.has(name)) this.add(name, 'tun', false);
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
      const link = name === undefined ? undefined : this.links.get(name);
      if (link && !link.persistent && ![...this.openFds.values()].includes(name!)) this.links.delete(name!);
    },
  };

  /** /dev/tapN as devtmpfs has it: the macvtap whose ifindex is N. */
  readonly openDevice = (path: string): number => {
    const index = Number(/^\/dev\/tap(\d+)$/.exec(path)?.[1]);
    const name = [...this.links].find(([, l]) => l.ifindex === index)?.[0];
    if (name === undefined) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
    const fd = this.nextFd++;
    this.openFds.set(fd, name);
    return fd;
  };

  /** Device names besides the preset bridges. */
  vmLinks(): string[] {
    return [...this.links.keys()].filter((n) => !['br0', 'ovsbr'].includes(n));
  }
}
