// Bundles the browser test page (test/page-main.js, the samples it imports
// and the SDK from dist/) into test/page/ with esbuild: ES modules, one chunk
// per sample (the samples are imported one at a time, as a page would load
// them). `npm run build` runs it after tsc; test/run.js serves test/page/.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'test/page');
await mkdir(out, { recursive: true });
await build({
  entryPoints: [path.join(root, 'test/page-main.js')],
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  logLevel: 'warning',
  // The samples import the package by its name, as an app would.
  alias: { 'convgroups-chat': path.join(root, 'dist/index.js') },
});
await writeFile(
  path.join(out, 'index.html'),
  '<!doctype html><meta charset="utf-8"><title>convgroups-chat samples</title><script type="module" src="page-main.js"></script>\n',
);
