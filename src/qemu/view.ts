/**
 * @module qemu/view: which files a QEMU binary opens by name, gathered once per binary with
 * the capability probe: its shared libraries (ldd: the loader's own answer, run on the
 * trusted binary without executing it), its loadable modules and their extra libraries,
 * and the files in its data directories (`-L help`). The planner picks from these.
 */
import { posix } from 'node:path';
import type { HostFiles, ProcessRunner } from '../sys/index.js';
import { QemuProbeError } from './errors.js';
import type { ProgramView, QemuView, ViewFile } from './types.js';

export interface LddResult {
  /** Resolved libraries, the interpreter included, in ldd's order. */
  paths: string[];
  /** Sonames the loader could not find. */
  missing: string[];
}

/** ldd's output: "name => /path (0x..)", "/interp (0x..)", "name => not found"; the vDSO has no path. */
export function parseLdd(text: string): LddResult {
  const paths: string[] = [];
  const missing: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    const arrow = /^(\S+) => (.*?)(?: \(0x[0-9a-f]+\))?$/.exec(t);
    if (arrow !== null) {
      if (arrow[2] === 'not found') missing.push(arrow[1]!);
      else if (arrow[2]!.startsWith('/')) paths.push(arrow[2]!);
      continue;
    }
    const interp = /^(\/\S+) \(0x[0-9a-f]+\)$/.exec(t);
    if (interp !== null) paths.push(interp[1]!);
  }
  return { paths, missing };
}

/** `qemu -L help`: one data directory per line, in search order. */
export function parseDataDirs(text: string): string[] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('/')).map((l) => posix.normalize(l));
}

async function run(runner: ProcessRunner, argv: string[], binary: string): Promise<string> {
  const r = await runner.run(argv, { timeoutMs: 30_000 }).catch((cause: unknown) => {
    throw new QemuProbeError('HOST_QEMU_PROBE', `running ${argv[0]} to find the files QEMU binary ${binary} opens failed`, { cause, context: { binary, argv } });
  });
  if (r.code !== 0) throw new QemuProbeError('HOST_QEMU_PROBE', `${argv.join(' ')} exited with ${r.code ?? r.signal} while finding the files QEMU binary ${binary} opens`, { context: { binary, argv, stderr: r.stderr.slice(0, 2000) } });
  return r.stdout;
}

/** Places accessed names in the view: the directory canonical, the name as asked for; top-level host symlinks remembered. */
class Placer {
  readonly links = new Map<string, string>();
  private readonly tops = new Map<string, Promise<string | null>>();
  constructor(private readonly files: HostFiles) {}

  async place(accessed: string): Promise<ViewFile | null> {
    const p = posix.normalize(accessed);
    const [source, dir] = await Promise.all([this.files.realpath(p), this.files.realpath(posix.dirname(p))]);
    if (source === null || dir === null || !(await this.files.isFile(source))) return null;
    const top = `/${p.split('/')[1]}`;
    if (!this.tops.has(top)) this.tops.set(top, this.files.readlink(top));
    const link = await this.tops.get(top)!;
    if (link !== null && !link.split('/').includes('..')) this.links.set(top, link);
    return { path: posix.join(dir, posix.basename(p)), source };
  }

  async placeAll(paths: readonly string[]): Promise<ViewFile[]> {
    return (await Promise.all(paths.map((p) => this.place(p)))).filter((f): f is ViewFile => f !== null);
  }
}

/** The modules directory QEMU relocates next to its binary (Debian: <bindir>/../lib/<multiarch>/qemu). */
async function moduleDir(files: HostFiles, binary: string, libraries: readonly ViewFile[]): Promise<string | null> {
  const libc = libraries.find((l) => /\/libc\.so\.\d+$/.test(l.path));
  const multiarch = libc === undefined ? null : posix.basename(posix.dirname(libc.path));
  const bindir = posix.dirname(binary);
  const candidates = [...(multiarch === null ? [] : [`${bindir}/../lib/${multiarch}/qemu`]), `${bindir}/../lib/qemu`, `${bindir}/../lib64/qemu`];
  for (const c of candidates.map((x) => posix.normalize(x))) if ((await files.readdir(c)) !== null) return c;
  return null;
}

async function gatherModules(runner: ProcessRunner, files: HostFiles, placer: Placer, binary: string, libraries: readonly ViewFile[]): Promise<QemuView['modules']> {
  const dir = await moduleDir(files, binary, libraries);
  const names = ((dir === null ? null : await files.readdir(dir)) ?? []).filter((n) => n.endsWith('.so')).sort();
  const have = new Set(libraries.map((l) => l.path));
  const out: QemuView['modules'] = {};
  await Promise.all(names.map(async (n) => {
    const file = await placer.place(`${dir}/${n}`);
    if (file === null) return;
    const ldd = parseLdd(await run(runner, ['ldd', file.source], binary));
    if (ldd.missing.length > 0) return; // a module whose libraries are not installed cannot be loaded anyway
    const extra = (await placer.placeAll(ldd.paths)).filter((l) => !have.has(l.path));
    out[n.slice(0, -3)] = { file, libraries: extra };
  }));
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

/** Data files by the name QEMU asks for: each directory's files and keymaps/*, the first directory in search order wins. */
async function gatherDataFiles(files: HostFiles, placer: Placer, dirs: readonly string[]): Promise<QemuView['dataFiles']> {
  const out: QemuView['dataFiles'] = {};
  for (const dir of dirs) {
    for (const sub of ['', 'keymaps/']) {
      const names = ((await files.readdir(`${dir}/${sub}`.replace(/\/$/, ''))) ?? []).sort();
      const placed = await Promise.all(names.map(async (n) => [`${sub}${n}`, out[`${sub}${n}`] === undefined ? await placer.place(`${dir}/${sub}${n}`) : null] as const));
      for (const [name, f] of placed) if (f !== null && out[name] === undefined) out[name] = f;
    }
  }
  return out;
}

/** Gathers the view facts of `binary` (an absolute path). */
export async function gatherView(runner: ProcessRunner, files: HostFiles, binary: string): Promise<QemuView> {
  const placer = new Placer(files);
  const self = await placer.place(binary);
  if (self === null) throw new QemuProbeError('HOST_QEMU_MISSING', `QEMU binary ${binary} is not a file`, { context: { binary } });
  const ldd = parseLdd(await run(runner, ['ldd', binary], binary));
  if (ldd.missing.length > 0) throw new QemuProbeError('HOST_QEMU_PROBE', `QEMU binary ${binary} needs libraries the loader cannot find: ${ldd.missing.join(', ')}`, { context: { binary, missing: ldd.missing } });
  const libraries = await placer.placeAll(ldd.paths);
  const modules = await gatherModules(runner, files, placer, binary, libraries);
  const dataDirs = parseDataDirs(await run(runner, [binary, '-L', 'help'], binary));
  const dataFiles = await gatherDataFiles(files, placer, dataDirs);
  const links = [...placer.links].sort(([a], [b]) => a.localeCompare(b)).map(([path, linkTarget]) => ({ path, linkTarget }));
  return { binary: self, links, libraries, modules, dataDirs, dataFiles };
}

/** The view facts of any dynamically linked program (a helper such as passt): binary, loader, libraries. */
export async function gatherProgramView(runner: ProcessRunner, files: HostFiles, binary: string): Promise<ProgramView | null> {
  const placer = new Placer(files);
  const self = await placer.place(binary);
  if (self === null) return null;
  const ldd = parseLdd(await run(runner, ['ldd', binary], binary).catch(() => ''));
  if (ldd.missing.length > 0 || ldd.paths.length === 0) return null;
  const libraries = await placer.placeAll(ldd.paths);
  const links = [...placer.links].sort(([a], [b]) => a.localeCompare(b)).map(([path, linkTarget]) => ({ path, linkTarget }));
  return { binary: self, links, libraries };
}

/** Every host file the view names (to tell whether a cached view still holds). */
export function viewSources(v: QemuView): string[] {
  return [v.binary.source, ...v.libraries.map((l) => l.source), ...Object.values(v.modules).flatMap((m) => [m.file.source, ...m.libraries.map((l) => l.source)]), ...Object.values(v.dataFiles).map((f) => f.source)];
}
