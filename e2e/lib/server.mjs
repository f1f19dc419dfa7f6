// Starts the real onramp binary for one test file, isolated in a fresh temp dir
// with its own databases and free ports, and stops it again.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
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
 *
 * With E2E_PG_PORT set (e2e/run.sh's second pass), the app is two processes on a fresh database
 * of the PostgreSQL listening there, behind Debian's nginx configured by deploy/nginx.conf: the
 * browser talks to nginx, which passes each request to either process.
 */
export async function startServer({ env = {}, label = 'onramp' } = {}) {
  if (process.env.E2E_PG_PORT) return startService({ env, label });
  return startOne({ env, label });
}

async function startOne({ env, label }) {
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

  const app = spawnApp(bin, childEnv, path.join(tmpDir, 'server.log'));
  const stop = async () => {
    await app.stop();
    if (!process.env.E2E_KEEP_TMP) {
      await fsp.rm(tmpDir, { recursive: true, force: true });
    }
  };
  await waitHealthy(app, `${baseURL}/healthz`, stop);
  const tail = () => app.tail();

  return {
    baseURL,
    appPort,
    bankPort,
    idpPort,
    tmpDir,
    logs: tail,
    stop,
  };
}

/** Spawns the onramp binary with `env`, its output kept in `logPath` and a tail in memory. */
function spawnApp(bin, env, logPath) {
  const logFile = fs.createWriteStream(logPath);
  let tail = '';
  const keep = (chunk) => {
    logFile.write(chunk);
    tail = (tail + chunk.toString()).slice(-20_000);
  };
  const child = spawn(bin, [], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const app = { exited: null, tail: () => tail };
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      app.exited = { code, signal };
      resolve(app.exited);
    });
    child.once('error', (error) => {
      app.exited = { error };
      resolve(app.exited);
    });
  });
  app.stop = async () => {
    if (!app.exited) {
      child.kill('SIGTERM');
      let timer;
      const done = await Promise.race([
        exitPromise,
        new Promise((r) => { timer = setTimeout(() => r(null), STOP_TIMEOUT_MS); }),
      ]);
      clearTimeout(timer);
      if (!done && !app.exited) {
        child.kill('SIGKILL');
        await exitPromise;
      }
    }
    await new Promise((r) => logFile.end(r));
  };
  return app;
}

/** Polls `url` until it answers 200; stops everything (`stop`) and throws if it never does. */
async function waitHealthy(app, url, stop) {
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let lastError; // set by every attempt before it is read
  for (;;) {
    if (app.exited) {
      const e = app.exited;
      const why = e.error ? e.error.message : `exit code ${e.code}, signal ${e.signal}`;
      await stop();
      throw new Error(`onramp exited before becoming healthy (${why}). Output:\n${app.tail()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return;
      lastError = `HTTP ${res.status}`;
    } catch (e) {
      lastError = e.cause ? e.cause.code || e.cause.message : e.message;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`onramp did not answer ${url} with 200 within ${HEALTH_TIMEOUT_MS} ms (${lastError}). Output:\n${app.tail()}`);
    }
    await sleep(150);
  }
}

/** Runs `cmd args`, resolving when it exits 0 and rejecting with its output otherwise. */
function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => { out += c; });
    child.stderr.on('data', (c) => { out += c; });
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out}`))));
  });
}

/** deploy/nginx.conf with one upstream line per app port, listening on `port`. */
async function nginxSite(appPorts, port, dir) {
  const sample = await fsp.readFile(path.join(repoRoot, 'deploy', 'nginx.conf'), 'utf8');
  const line = sample.split('\n').find((l) => l.trim().startsWith('server 127.0.0.1:8080'));
  const servers = appPorts.map((p) => line.replace('127.0.0.1:8080', `127.0.0.1:${p}`)).join('\n');
  return sample
    .replace(line, servers)
    .replace('listen 80 default_server;', `listen 127.0.0.1:${port} default_server;`)
    .replace('/var/log/nginx/onramp.access.log', path.join(dir, 'access.log'));
}

/** nginx in front of `appPorts` on `port`, run from `dir`; resolves to { stop() }. */
async function startNginx(appPorts, port, dir) {
  await fsp.chmod(dir, 0o755); // nginx's workers (nobody) reach their temporary files
  await fsp.writeFile(path.join(dir, 'onramp.conf'), await nginxSite(appPorts, port, dir));
  const main = `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\n`
    + `error_log ${dir}/error.log warn;\nevents { worker_connections 1024; }\n`
    + `http {\n client_body_temp_path ${dir}/body;\n proxy_temp_path ${dir}/proxy;\n`
    + ` fastcgi_temp_path ${dir}/fastcgi;\n uwsgi_temp_path ${dir}/uwsgi;\n scgi_temp_path ${dir}/scgi;\n`
    + ` include ${dir}/onramp.conf;\n}\n`;
  await fsp.writeFile(path.join(dir, 'nginx.conf'), main);
  const child = spawn(process.env.ONRAMP_NGINX || '/usr/sbin/nginx',
    ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')],
    { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    stop: async () => {
      child.kill('SIGQUIT');
      await exited;
    },
  };
}

/** Two onramp processes on a fresh PostgreSQL database behind nginx (see `startServer`). */
async function startService({ env, label }) {
  const bin = binaryPath();
  const tmpDir = await fsp.mkdtemp(path.join(os.tmpdir(), `onramp-e2e-${label}-`));
  const [front, p0, p1, bankPort, idpPort] = await freePorts(5);
  const pg = process.env.E2E_PG_PORT;
  const db = `e2e_${crypto.randomUUID().replaceAll('-', '')}`;
  await run(process.env.E2E_PSQL || 'psql',
    ['-h', '127.0.0.1', '-p', pg, '-U', 'postgres', '-d', 'postgres', '-c', `CREATE DATABASE ${db}`]);
  const baseURL = `http://localhost:${front}`;
  const bank = `http://127.0.0.1:${bankPort}`;
  const idp = `http://127.0.0.1:${idpPort}`;
  const common = {
    ...process.env,
    ONRAMP__DATABASE__URL: `postgres://postgres@127.0.0.1:${pg}/${db}`,
    ONRAMP__DATABASE__MAX_CONNECTIONS: '8',
    ONRAMP__SERVER__PUBLIC_URL: baseURL,
    ONRAMP__SERVER__TRUSTED_PROXIES: '127.0.0.1',
    ONRAMP__DEV__BANK_DATABASE_URL: `sqlite://${tmpDir}/bank.db`,
    ONRAMP__DEV__BANK_LISTEN: `127.0.0.1:${bankPort}`,
    ONRAMP__DEV__IDP_LISTEN: `127.0.0.1:${idpPort}`,
    ...env,
  };
  const own = (port) => ({
    ONRAMP__SERVER__LISTEN: `127.0.0.1:${port}`,
    ONRAMP__SERVER__ADVERTISE_URL: `http://127.0.0.1:${port}`,
  });
  // Process 0 runs the development bank and identity provider; process 1 uses them.
  const first = spawnApp(bin, { ...common, ...own(p0) }, path.join(tmpDir, 'server0.log'));
  const apps = [first];
  const nginx = await startNginx([p0, p1], front, tmpDir);
  const stop = async () => {
    await Promise.all(apps.map((a) => a.stop()));
    await nginx.stop();
    if (!process.env.E2E_KEEP_TMP) {
      await fsp.rm(tmpDir, { recursive: true, force: true });
    }
  };
  await waitHealthy(first, `http://127.0.0.1:${p0}/healthz`, stop);
  const second = spawnApp(bin, {
    ...common,
    ...own(p1),
    ONRAMP__DEV__ENABLED: 'false',
    ONRAMP__BANK__API_URL: bank,
    ONRAMP__GOOGLE__AUTH_URL: `${idp}/authorize`,
    ONRAMP__GOOGLE__TOKEN_URL: `${idp}/token`,
    ONRAMP__GOOGLE__USERINFO_URL: `${idp}/userinfo`,
  }, path.join(tmpDir, 'server1.log'));
  apps.push(second);
  await waitHealthy(second, `http://127.0.0.1:${p1}/healthz`, stop);
  await waitHealthy(first, `${baseURL}/healthz`, stop);
  return {
    baseURL,
    appPort: front,
    bankPort,
    idpPort,
    tmpDir,
    logs: () => `process 0:\n${first.tail()}\nprocess 1:\n${second.tail()}`,
    stop,
  };
}
