// Bundles src/app.ts (and Connect-ES) into dist/app.js with esbuild and
// copies index.html beside it: dist/ is the whole static site.
// Run `npm run build`, which first runs `buf generate` for src/gen.
import { copyFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, 'dist');
await mkdir(dist, { recursive: true });
const result = await build({
  entryPoints: [path.join(here, 'src/app.ts')],
  outfile: path.join(dist, 'app.js'),
  bundle: true,
  format: 'esm',
  target: 'es2022',
  sourcemap: true,
  minify: true,
  logLevel: 'warning',
  metafile: true,
});
await copyFile(path.join(here, 'index.html'), path.join(dist, 'index.html'));
const bytes = result.metafile.outputs['dist/app.js']?.bytes ?? Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes;
console.log(`built dist/index.html and dist/app.js (${Math.round(bytes / 1024)} KiB)`);
