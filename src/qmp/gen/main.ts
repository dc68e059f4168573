/** @module qmp/gen/main: `npm run gen:qmp`: regenerates src/qmp/generated/qapi.ts from the installed QEMU (`--check` only compares). */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateFromLiveQemu } from './generate.js';

// dist/src/qmp/gen → repository root is four levels up.
const target = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..', 'src', 'qmp', 'generated', 'qapi.ts');
const text = await generateFromLiveQemu();
if (process.argv.includes('--check')) {
  const same = readFileSync(target, 'utf8') === text;
  process.stdout.write(same ? `${target} is up to date\n` : `${target} differs from the installed QEMU's schema\n`);
  process.exitCode = same ? 0 : 1;
} else {
  writeFileSync(target, text);
  process.stdout.write(`wrote ${target} (${text.length} bytes)\n`);
}
