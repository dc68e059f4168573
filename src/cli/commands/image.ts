/** @module cli/commands/image: `warden image inspect|chain`: one image's header facts, or its backing chain, from the bounded prober. */
import { Command, Option } from 'commander';
import { WardenError } from '../../errors/index.js';
import type { ChainLayer, ImageChain, ImageFormat, ImageInfo } from '../../image/index.js';
// The leaf with the format names, not the image module: help text must not load the prober (issue 16).
import { IMAGE_FORMATS, isImageFormat } from '../../image/formats/names.js';
import { printJson, type Io } from '../output.js';

function formatOption(): Option {
  return new Option('-f, --format <fmt>', `the image's format (${IMAGE_FORMATS.join(', ')}); probed when absent`);
}

function parseFormat(value: string | undefined): ImageFormat | undefined {
  if (value === undefined) return undefined;
  if (isImageFormat(value)) return value;
  throw new WardenError('USAGE_BAD_FORMAT', `--format ${value} is not an image format qemu-warden reads`, {
    context: { format: value }, suggestions: [`use one of: ${IMAGE_FORMATS.join(', ')}`],
  });
}

/** The public view of one image: exactly the documented fields, null where absent. */
function infoView(i: ImageInfo): Record<string, unknown> {
  return {
    format: i.format, virtualSize: i.virtualSize, backingFilename: i.backingFilename, backingFormat: i.backingFormat,
    encrypted: i.encrypted, dataFile: i.dataFile, dirty: i.dirty, corrupt: i.corrupt, bytesRead: i.bytesRead,
    ...(i.formatSpecific === undefined ? {} : { formatSpecific: i.formatSpecific }),
    ...(i.extents === undefined ? {} : { extents: i.extents }),
    ...(i.notes === undefined ? {} : { notes: i.notes }),
  };
}

function layerView(l: ChainLayer): Record<string, unknown> {
  return {
    path: l.path, ...infoView(l), dataFilePath: l.dataFilePath, size: l.size,
    ...(l.extentPaths === undefined ? {} : { extentPaths: l.extentPaths }),
  };
}

function human(i: ImageInfo): string[] {
  const flags = [i.encrypted && 'encrypted', i.dirty && 'dirty', i.corrupt && 'CORRUPT'].filter(Boolean).join(', ');
  const lines = [`format: ${i.format}`, `virtual size: ${i.virtualSize === null ? 'unknown' : `${i.virtualSize} bytes`}`];
  if (i.backingFilename !== null) lines.push(`backing file: ${i.backingFilename} (format: ${i.backingFormat ?? 'not recorded'})`);
  if (i.dataFile !== null) lines.push(`data file: ${i.dataFile}`);
  for (const e of i.extents ?? []) lines.push(`extent: ${e.access} ${e.sectors} ${e.type} "${e.file}"`);
  if (flags !== '') lines.push(`flags: ${flags}`);
  for (const [k, v] of Object.entries(i.formatSpecific ?? {})) lines.push(`${k}: ${String(v)}`);
  lines.push(`header bytes read: ${i.bytesRead}`);
  for (const n of i.notes ?? []) lines.push(`note: ${n}`);
  return lines;
}

/** A chain as a small tree: each layer under the one that names it, its data file and extents beneath it. */
function tree(chain: ImageChain): string[] {
  const lines: string[] = [];
  chain.layers.forEach((l, depth) => {
    const pad = depth === 0 ? '' : `${'   '.repeat(depth - 1)}└─ `;
    const facts = [l.format, l.virtualSize === null ? null : `${l.virtualSize} bytes`, l.encrypted ? 'encrypted' : null,
      l.dirty ? 'dirty' : null, l.corrupt ? 'CORRUPT' : null, `read ${l.bytesRead} B`].filter((x) => x !== null);
    lines.push(`${pad}${l.path} [${facts.join(', ')}]`);
    const under = ' '.repeat(3 * depth);
    if (l.dataFilePath !== null) lines.push(`${under}data file: ${l.dataFilePath}`);
    for (const e of l.extentPaths ?? []) lines.push(`${under}extent: ${e}`);
  });
  if (chain.unfollowed !== undefined) lines.push(`${'   '.repeat(chain.layers.length - 1)}└─ ${chain.unfollowed.name} (${chain.unfollowed.kind} backing, not followed)`);
  return lines;
}

function parseDepth(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new WardenError('USAGE_BAD_MAX_DEPTH', `--max-depth ${value} is not a positive integer`, { context: { maxDepth: value } });
  }
  return n;
}

const collect = (value: string, prev: string[]): string[] => [...prev, value];

export function registerImage(program: Command, io: Io): void {
  const image = program.command('image').description('read disk image headers and backing chains (bounded reads, nothing opened for writing)');
  image.command('inspect').description("print one image's header facts")
    .addOption(formatOption()).option('--json', 'print JSON').argument('<path>')
    .action(async (path: string, opts: { format?: string; json?: boolean }) => {
      const format = parseFormat(opts.format);
      const { probeImage } = await import('../../image/index.js');
      const info = await probeImage(path, format === undefined ? {} : { format });
      if (opts.json === true) printJson(io, infoView(info));
      else io.out(human(info).join('\n'));
    });
  image.command('chain').description('walk the backing chain under the image policy and print every layer')
    .addOption(formatOption())
    .option('--allow-dir <dir>', 'a directory the chain may lead into besides the top image\'s directory and the host policy\'s imageDirs (repeatable); any layer, data file or extent elsewhere is refused', collect, [])
    .option('--data-file <path>', 'an external data file the image may name wherever it lies')
    .option('--max-depth <n>', 'most layers allowed', parseDepth, 64)
    .option('--allow-json-backing', 'stop at a json: backing name instead of refusing it')
    .option('--allow-protocol-backing', 'stop at a protocol backing name (nbd:, http: ...) instead of refusing it')
    .option('--json', 'print JSON').argument('<path>')
    .action(async (path: string, opts: { format?: string; allowDir: string[]; dataFile?: string; maxDepth: number; allowJsonBacking?: boolean; allowProtocolBacking?: boolean; json?: boolean }) => {
      const format = parseFormat(opts.format);
      const { loadHostPolicy, walkChainConfined } = await import('../../image/index.js');
      // Confined as start confines it (a read-only look: no owner check for writing).
      const chain = await walkChainConfined({ image: path, format, allowDirs: opts.allowDir, dataFile: opts.dataFile, readOnly: true }, loadHostPolicy(), {
        maxDepth: opts.maxDepth,
        allowJsonBackings: opts.allowJsonBacking === true,
        allowProtocolBackings: opts.allowProtocolBacking === true,
      });
      if (opts.json === true) printJson(io, { layers: chain.layers.map(layerView), ...(chain.unfollowed === undefined ? {} : { unfollowed: chain.unfollowed }) });
      else io.out(tree(chain).join('\n'));
    });
}
