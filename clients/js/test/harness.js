// Test harness (Node): starts the real convgroups server as a process on
// 127.0.0.1 with a temporary data directory, mints tokens with
// `convgroups token`, and stops it with SIGTERM or SIGKILL, restarting on the
// same data directory and port.
//
// The binary: CONVGROUPS_BIN, else ../../target/debug/convgroups (under
// CARGO_TARGET_DIR when that is set).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

export const BIN =
  process.env.CONVGROUPS_BIN ||
  path.join(process.env.CARGO_TARGET_DIR ? path.resolve(repo, process.env.CARGO_TARGET_DIR) : path.join(repo, 'target'), 'debug/convgroups');

if (!existsSync(BIN)) {
  throw new Error(`no server binary at ${BIN}: run \`cargo build --bin convgroups\` or set CONVGROUPS_BIN`);
}

const READY_MS = 20000;

export class Server {
  constructor(dataDir, args) {
    this.dataDir = dataDir;
    this.args = args;
    this.port = 0;
    this.child = undefined;
    this.output = '';
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  // Starts `convgroups serve` on this.port (0 the first time: the address
  // comes from its "serving" log line) and resolves once it serves.
  start() {
    const args = [
      'serve',
      '--listen', `127.0.0.1:${this.port}`,
      '--data-dir', this.dataDir,
      '--cors-allow-origin', '*',
      '--shutdown-grace', '2s',
      '--log-level', 'info',
      ...this.args,
    ];
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the server did not serve within ${READY_MS} ms:\n${this.output}`)), READY_MS);
      const onData = (chunk) => {
        this.output += chunk;
        // text log: "... serving addr=127.0.0.1:PORT ..."
        const m = /serving.*?addr=127\.0\.0\.1:(\d+)|addr=127\.0\.0\.1:(\d+).*?serving/.exec(this.output);
        if (m) {
          clearTimeout(timer);
          this.port = Number(m[1] ?? m[2]);
          child.stdout.off('data', onData);
          child.stderr.off('data', onData);
          child.stdout.on('data', (c) => (this.output += c));
          child.stderr.on('data', (c) => (this.output += c));
          resolve(this);
        }
      };
      child.stdout.setEncoding('utf8').on('data', onData);
      child.stderr.setEncoding('utf8').on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the server exited (${code}) before serving:\n${this.output}`));
      });
    });
  }

  // SIGTERM: a graceful shutdown (watch streams end with SHUTTING_DOWN).
  async stop() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    const { code } = await this.exited;
    if (code !== 0) throw new Error(`the server exited with ${code} after SIGTERM:\n${this.output}`);
  }

  // kill -9: a crash.
  async kill() {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }

  async restart(how) {
    await (how === 'SIGKILL' ? this.kill() : this.stop());
    this.output = '';
    return this.start();
  }
}

const dirs = [];

// A server on 127.0.0.1:0 with a fresh data directory. Mints tokens before
// it starts (the token command creates the secret the server then uses).
export async function startServer(args = []) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'convgroups-chat-test-'));
  dirs.push(root);
  const server = new Server(path.join(root, 'data'), args);
  token(server, 'bootstrap'); // creates the secret
  await server.start();
  return server;
}

export function token(server, user, { ttl } = {}) {
  const args = ['token', '--user', user, '--data-dir', server.dataDir, '--create-secret'];
  if (ttl) args.push('--ttl', ttl);
  return execFileSync(BIN, args, { encoding: 'utf8' }).trim();
}

export function cleanup() {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}
