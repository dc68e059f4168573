/** @module plan/testing: fact builders for tests (golden cases describe chains briefly; this fills in the rest). */
import type { ChainLayer, ImageChain, ImageFormat } from '../image/index.js';
import type { ProgramView, QemuCaps } from '../qemu/index.js';
import type { Facts } from './types.js';

export type LayerSketch = Partial<ChainLayer> & { path: string; format: ImageFormat };

/** A stand-in inode number: one per path, so distinct paths are distinct files unless a sketch says otherwise. */
function inoOf(path: string): number {
  let h = 2166136261;
  for (const c of path) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h;
}

/** A ChainLayer with neutral defaults for every field the sketch leaves out; backing names follow the next layer. */
export function sketchChain(layers: readonly LayerSketch[]): ImageChain {
  return {
    layers: layers.map((l, i) => {
      const next = layers[i + 1];
      return {
        virtualSize: 1024 ** 3, backingFilename: next?.path ?? null, backingFormat: next?.format ?? null,
        encrypted: false, dataFile: null, dirty: false, corrupt: false, bytesRead: 512,
        dataFilePath: null, dev: 64768, ino: inoOf(l.path), size: 196_608, ...l,
      };
    }),
  };
}

export interface FactSketch {
  kvmUsable?: boolean;
  chains?: Record<string, LayerSketch[]>;
  host?: Facts['host'];
  firmware?: Facts['firmware'] | null;
  identity?: Facts['identity'];
  /** passt's view (null: passt is not installed); default: Debian 12's /usr/bin/passt. */
  passt?: ProgramView | null;
  /** The shares' directories; with them, virtiofsd's and unshare's views (trimmed Debian 12 ones). */
  shares?: Facts['shares'];
  /** swtpm's view (null: not installed); default: Debian 12's /usr/bin/swtpm. */
  swtpm?: ProgramView | null;
}

const lib = (name: string): { path: string; source: string } => ({ path: `/usr/lib/x86_64-linux-gnu/${name}`, source: `/usr/lib/x86_64-linux-gnu/${name}` });
const LOADER = { path: '/usr/lib64/ld-linux-x86-64.so.2', source: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' };
const LINKS = [{ path: '/lib', linkTarget: 'usr/lib' }, { path: '/lib64', linkTarget: 'usr/lib64' }];
/** Debian 12's QEMU virtiofsd, its libraries trimmed to three besides libc. */
export const VIRTIOFSD_VIEW: ProgramView = { binary: { path: '/usr/lib/qemu/virtiofsd', source: '/usr/lib/qemu/virtiofsd' }, links: LINKS,
  libraries: [lib('libseccomp.so.2'), lib('libcap-ng.so.0'), lib('libglib-2.0.so.0'), lib('libc.so.6'), LOADER] };
/** util-linux's unshare: libc only. */
export const UNSHARE_VIEW: ProgramView = { binary: { path: '/usr/bin/unshare', source: '/usr/bin/unshare' }, links: LINKS, libraries: [lib('libc.so.6'), LOADER] };

/** Debian 12's passt: one library besides the loader. */
export const PASST_VIEW: ProgramView = {
  binary: { path: '/usr/bin/passt', source: '/usr/bin/passt' },
  links: [{ path: '/lib', linkTarget: 'usr/lib' }, { path: '/lib64', linkTarget: 'usr/lib64' }],
  libraries: [
    { path: '/usr/lib/x86_64-linux-gnu/libc.so.6', source: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
    { path: '/usr/lib64/ld-linux-x86-64.so.2', source: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  ],
};

/** Debian 12's swtpm (0.7.1): its libtpms glue library, libtpms, libcrypto, libseccomp, libc and the loader (trimmed here to three). */
export const SWTPM_VIEW: ProgramView = {
  binary: { path: '/usr/bin/swtpm', source: '/usr/bin/swtpm' },
  links: [{ path: '/lib', linkTarget: 'usr/lib' }, { path: '/lib64', linkTarget: 'usr/lib64' }],
  libraries: [
    { path: '/usr/lib/x86_64-linux-gnu/swtpm/libswtpm_libtpms.so.0', source: '/usr/lib/x86_64-linux-gnu/swtpm/libswtpm_libtpms.so.0' },
    { path: '/usr/lib/x86_64-linux-gnu/libc.so.6', source: '/usr/lib/x86_64-linux-gnu/libc.so.6' },
    { path: '/usr/lib64/ld-linux-x86-64.so.2', source: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  ],
};

/** Facts for VM `name` with state under /run/warden/vms/NAME, uid 200001 and the given QEMU caps. */
export function sketchFacts(name: string, qemu: QemuCaps, s: FactSketch = {}, stateRoot = '/run/warden/vms'): Facts {
  const facts: Facts = {
    qemu,
    kvmUsable: s.kvmUsable ?? false,
    chains: Object.fromEntries(Object.entries(s.chains ?? {}).map(([k, v]) => [k, sketchChain(v)])),
    identity: s.identity ?? { uid: 200001, gid: 200001 },
    paths: testPaths(stateRoot, name),
  };
  if (s.firmware !== null) facts.firmware = s.firmware ?? { uefiCode: '/usr/share/OVMF/OVMF_CODE_4M.fd', uefiVarsTemplate: '/usr/share/OVMF/OVMF_VARS_4M.fd' };
  if (s.host !== undefined) facts.host = s.host;
  if (s.passt !== null) facts.helpers = { passt: s.passt ?? PASST_VIEW };
  if (s.swtpm !== null) facts.helpers = { ...facts.helpers, swtpm: s.swtpm ?? SWTPM_VIEW };
  if (s.shares !== undefined) {
    facts.shares = s.shares;
    facts.helpers = { ...facts.helpers, virtiofsd: VIRTIOFSD_VIEW, unshare: UNSHARE_VIEW };
  }
  return facts;
}

/** State paths as the state store names them (src/vm/facts vmFactPaths; plan may not import vm). */
export function testPaths(stateRoot: string, name: string): Facts['paths'] {
  const dir = `${stateRoot.replace(/\/+$/, '')}/${name}`;
  return {
    stateDir: dir, qmpSocket: `${dir}/qmp.sock`, serialSocket: `${dir}/serial.sock`, serialLog: `${dir}/serial.log`,
    uefiVars: `${dir}/uefi-vars.fd`, vncSocket: `${dir}/vnc.sock`, guestAgentSocket: `${dir}/qga.sock`,
  };
}
