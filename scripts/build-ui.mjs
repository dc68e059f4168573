// Bundles the web console (src/ui) into dist/ui with esbuild: app.js, app.css, index.html.
// Everything is bundled, nothing is fetched from a CDN: the console works offline.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist', 'ui');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(root, 'src', 'ui', 'main.ts') },
  outdir: out,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
  tsconfig: join(root, 'src', 'ui', 'tsconfig.json'),
});
copyFileSync(join(root, 'src', 'ui', 'index.html'), join(out, 'index.html'));
