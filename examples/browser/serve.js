// A tiny static file server for dist/ on 127.0.0.1 (no dependencies).
//
//   node serve.js [--port 8080]
//
// then open http://127.0.0.1:8080/?server=http://127.0.0.1:50051&token=...
// with the convgroups server started with
// --cors-allow-origin http://127.0.0.1:8080 (grpc-web from another origin).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.map': 'application/json' };

// Starts serving `dir`; resolves to { url, close } once listening.
export function serveStatic(dir = path.join(here, 'dist'), port = 0) {
  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://localhost');
    const file = path.join(dir, path.normalize(pathname === '/' ? '/index.html' : pathname));
    if (!file.startsWith(dir + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const url = `http://127.0.0.1:${server.address().port}`;
      resolve({ url, close: () => new Promise((done) => server.close(done)) });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--port');
  const { url } = await serveStatic(undefined, i > 0 ? Number(process.argv[i + 1]) : 8080);
  console.log(`serving dist/ at ${url}/  (open ${url}/?server=http://127.0.0.1:50051&token=...)`);
}
