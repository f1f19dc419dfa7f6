// Starts the real onramp binary for one test file, isolated in a fresh temp dir
// with its own databases and free ports, and stops it again.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const e2eDir = path.resolve(here, '..');
export const repoRoot = path.resolve(e2eDir, '..');

const HEALTH_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 5_000;

export function binaryPath() {
  const fromEnv = process.env.ONRAMP_BIN;
  // ONRAMP_BIN may be absolute or relative to e2e/ (where `npm test` runs).
  return path.resolve(e2eDir, fromEnv || path.join('..', 'target', 'release', 'onramp'));
}

/** Reserve `n` distinct free TCP ports (held open together, then released). */
export async function freePorts(n) {
  const servers = [];
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
      servers.push(s);
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r()))));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Start the server. `env` adds/overrides environment variables (for example
 * `{ ONRAMP__DEV__WEBHOOK_DELAY_MS: '4000' }`).
 * Resolves to { baseURL, bankListen, idpListen, tmpDir, logs(), stop() }.
 */
export async function startServer({ env = {}, label = 'onramp' } = {}) {
  const bin = binaryPath();
  if (!fs.existsSync(bin)) {
    throw new Error(`onramp binary not found at ${bin}; build it (cargo build --release --bin onramp) or set ONRAMP_BIN`);
  }
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), `onramp-e2e-${label}-`));
  const [appPort, bankPort, idpPort] = await freePorts(3);
  const baseURL = `http://localhost:${appPort}`;

  const childEnv = {
    ...process.env,
    ONRAMP__DATABASE__URL: `sqlite://${tmpDir}/app.db`,
    ONRAMP__DEV__BANK_DATABASE_URL: `sqlite://${tmpDir}/bank.db`,
    ONRAMP__SERVER__LISTEN: `127.0.0.1:${appPort}`,
    ONRAMP__DEV__BANK_LISTEN: `127.0.0.1:${bankPort}`,
    ONRAMP__DEV__IDP_LISTEN: `127.0.0.1:${idpPort}`,
    ...env,
  };

  const logPath = path.join(tmpDir, 'server.log');
  const logFile = fs.createWriteStream(logPath);
  let tail = '';
  const keep = (chunk) => {
    logFile.write(chunk);
    tail = (tail + chunk.toString()).slice(-20_000);
  };

  const child = spawn(bin, [], {
    cwd: repoRoot,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
    child.once('error', (error) => {
      exited = { error };
      resolve(exited);
    });
  });

  async function stop() {
    if (!exited) {
      child.kill('SIGTERM');
      let timer;
      const done = await Promise.race([
        exitPromise,
        new Promise((r) => { timer = setTimeout(() => r(null), STOP_TIMEOUT_MS); }),
      ]);
      clearTimeout(timer);
      if (!done && !exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    await new Promise((r) => logFile.end(r));
    if (!process.env.E2E_KEEP_TMP) {
      await fsp.rm(tmpDir, { recursive: true, force: true });
    }
  }

  // Wait for /healthz to answer 200.
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let lastError; // set by every attempt before it is read
  for (;;) {
    if (exited) {
      const why = exited.error ? exited.error.message : `exit code ${exited.code}, signal ${exited.signal}`;
      await stop();
      throw new Error(`onramp exited before becoming healthy (${why}). Output:\n${tail}`);
    }
    try {
      const res = await fetch(`${baseURL}/healthz`, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) break;
      lastError = `HTTP ${res.status}`;
    } catch (e) {
      lastError = e.cause ? e.cause.code || e.cause.message : e.message;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`onramp did not answer GET /healthz with 200 within ${HEALTH_TIMEOUT_MS} ms (${lastError}). Output:\n${tail}`);
    }
    await sleep(150);
  }

  return {
    baseURL,
    appPort,
    bankPort,
    idpPort,
    tmpDir,
    logs: () => tail,
    stop,
  };
}
