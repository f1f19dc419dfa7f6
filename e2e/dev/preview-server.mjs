#!/usr/bin/env node
// PAGE PREVIEW TOOL — NOT A TEST, NOT PART OF THE PRODUCT.
//
// A throwaway, in-memory imitation of the onramp server for working on static/
// without the Rust binary: it serves static/ with the production CSP and fakes the
// JSON API, the development identity provider and the bank simulator's pay page
// (same data-testids as the specs). Nothing here is checked for security.
//
//   node e2e/dev/preview-server.mjs            # then open http://localhost:8090/
//
// It reads the same ONRAMP__* listen variables as the real binary, so it can also
// stand in for it to dry-run the e2e suite's own logic:
//   ONRAMP_BIN=$PWD/e2e/dev/preview-server.mjs npm --prefix e2e test
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const staticDir = process.env.PREVIEW_STATIC_DIR || path.resolve(here, '..', '..', 'static');

const env = process.env;
const appListen = env.ONRAMP__SERVER__LISTEN || '127.0.0.1:8090';
const bankListen = env.ONRAMP__DEV__BANK_LISTEN || '127.0.0.1:8091';
const idpListen = env.ONRAMP__DEV__IDP_LISTEN || '127.0.0.1:8092';
const webhookDelay = Number(env.ONRAMP__DEV__WEBHOOK_DELAY_MS || 0);
const MAX = 10000000;

const port = (l) => Number(l.split(':').pop());
const host = (l) => l.slice(0, l.lastIndexOf(':'));
const appUrl = `http://localhost:${port(appListen)}`;
const bankUrl = `http://127.0.0.1:${port(bankListen)}`;
const idpUrl = `http://127.0.0.1:${port(idpListen)}`;

const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; " +
  "connect-src 'self'; form-action 'self' http: https:; base-uri 'none'; frame-ancestors 'none'";

const users = new Map(); // email -> user
const sessions = new Map(); // sid -> email
const txns = new Map(); // email -> [tx] (newest first)
const orders = new Map(); // token -> {tx, email}
const idem = new Map(); // email|key -> response

const rid = (p) => p + crypto.randomBytes(12).toString('hex');
const now = () => new Date().toISOString();

function send(res, status, body, headers = {}) {
  const isJson = typeof body === 'object' && body !== null && !Buffer.isBuffer(body);
  res.writeHead(status, {
    'Content-Type': isJson ? 'application/json' : 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(isJson ? JSON.stringify(body) : body);
}
const err = (res, status, code, message) => send(res, status, { error: { code, message } });

function readBody(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function cookies(req) {
  const out = {};
  for (const part of (req.headers.cookie || '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

function sessionUser(req) {
  const sid = cookies(req).session_id;
  const email = sid && sessions.get(sid);
  return email ? users.get(email) : null;
}

function serveStatic(res, file, type) {
  fs.readFile(path.join(staticDir, file), (e, data) => {
    if (e) return err(res, 404, 'not_found', 'There is nothing here.');
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Security-Policy': CSP,
      'X-Content-Type-Options': 'nosniff',
      'Cache-Control': 'no-cache',
    });
    res.end(data);
  });
}

const TYPES = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

// Any .js/.css file under static/ (the real server serves a compiled-in list of them).
function serveAsset(res, name) {
  const type = TYPES[path.extname(name)];
  const file = path.resolve(staticDir, name);
  if (!type || !file.startsWith(staticDir + path.sep)) return err(res, 404, 'not_found', 'There is nothing here.');
  return serveStatic(res, path.relative(staticDir, file), type);
}

const page = (title, body) => `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head>
<body style="font-family:sans-serif;max-width:420px;margin:40px auto">${body}</body></html>`;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ------------------------------------------------------------------ app
const app = http.createServer(async (req, res) => {
  const u = new URL(req.url, appUrl);
  const p = u.pathname;
  if (p === '/' || p === '/dashboard') return serveStatic(res, 'index.html', 'text/html; charset=utf-8');
  if (p.startsWith('/static/')) return serveAsset(res, p.slice('/static/'.length));
  if (p === '/healthz') return send(res, 200, { status: 'ok' });
  if (p === '/api/settings') {
    return send(res, 200, { currency: 'INR', deposit: { min_amount: 1, max_amount: MAX } });
  }

  if (req.method === 'POST' && req.headers.origin && req.headers.origin !== appUrl) {
    return err(res, 403, 'forbidden_origin', 'Cross-origin request refused.');
  }

  if (p === '/api/auth/google') {
    const q = new URLSearchParams({
      response_type: 'code', client_id: 'preview', state: rid('st_'),
      redirect_uri: `${appUrl}/api/auth/google/callback`, scope: 'openid email profile',
    });
    return send(res, 302, '', { Location: `${idpUrl}/authorize?${q}` });
  }
  if (p === '/api/auth/google/callback') {
    if (u.searchParams.get('error')) {
      return send(res, 303, '', { Location: `/?error=${encodeURIComponent(u.searchParams.get('error'))}` });
    }
    let who;
    try { who = JSON.parse(Buffer.from(u.searchParams.get('code') || '', 'base64url').toString()); } catch { who = null; }
    if (!who || !who.email) return send(res, 303, '', { Location: '/?error=invalid_grant' });
    if (!users.has(who.email)) {
      users.set(who.email, { id: rid('usr_'), email: who.email, name: who.name || who.email, picture: null });
      txns.set(who.email, []);
    }
    const sid = rid('');
    sessions.set(sid, who.email);
    return send(res, 303, '', { Location: '/', 'Set-Cookie': `session_id=${sid}; HttpOnly; SameSite=Lax; Path=/` });
  }

  if (!p.startsWith('/api/')) return send(res, 404, 'not found');
  const user = sessionUser(req);
  if (p !== '/api/webhooks/bank' && !user) return err(res, 401, 'unauthorized', 'Sign in first.');

  if (p === '/api/auth/logout' && req.method === 'POST') {
    sessions.delete(cookies(req).session_id);
    res.writeHead(204, { 'Set-Cookie': 'session_id=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax' });
    return res.end();
  }
  if (p === '/api/user/me') return send(res, 200, user);
  if (p === '/api/balance') {
    const amount = txns.get(user.email).filter((t) => t.status === 'success').reduce((a, t) => a + t.amount, 0);
    return send(res, 200, { amount, currency: 'INR' });
  }
  if (p === '/api/transactions') {
    const limit = Math.min(100, Math.max(1, Number(u.searchParams.get('limit') || 20)));
    return send(res, 200, { items: txns.get(user.email).slice(0, limit), next: null });
  }
  if (p === '/api/deposit' && req.method === 'POST') {
    let body;
    try { body = JSON.parse(await readBody(req)); } catch { return err(res, 400, 'invalid_body', 'Body must be JSON.'); }
    const keys = body && typeof body === 'object' ? Object.keys(body) : [];
    if (keys.length !== 1 || keys[0] !== 'amount' || !Number.isInteger(body.amount) || body.amount < 1 || body.amount > MAX) {
      return err(res, 400, 'invalid_amount', 'The amount must be a whole number of paise from 1 to 10000000.');
    }
    const ik = req.headers['idempotency-key'];
    if (ik && idem.has(`${user.email}|${ik}`)) return send(res, 201, idem.get(`${user.email}|${ik}`));
    const t = now();
    const tx = { id: rid('txn_'), amount: body.amount, currency: 'INR', status: 'processing', created_at: t, updated_at: t };
    txns.get(user.email).unshift(tx);
    const token = rid('bank_session_');
    orders.set(token, { tx, email: user.email, bankStatus: 'PENDING' });
    const out = { id: tx.id, status: 'processing', amount: tx.amount, currency: 'INR', url: `${bankUrl}/pay?token=${token}` };
    if (ik) idem.set(`${user.email}|${ik}`, out);
    return send(res, 201, out);
  }
  return err(res, 404, 'not_found', 'No such endpoint.');
});

// ------------------------------------------------------------------ dev identity provider
const idp = http.createServer(async (req, res) => {
  const u = new URL(req.url, idpUrl);
  if (u.pathname === '/authorize' && req.method === 'GET') {
    const hidden = [...u.searchParams].map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`).join('');
    return send(res, 200, page('Preview sign-in', `<h1>Preview identity provider</h1>
<form method="post" action="/authorize">${hidden}
<p><label>Email <input name="email" data-testid="idp-email" value="dev@example.com"></label></p>
<p><label>Name <input name="name" data-testid="idp-name" value="Dev User"></label></p>
<button data-testid="idp-continue">Continue</button></form>`));
  }
  if (u.pathname === '/authorize' && req.method === 'POST') {
    const f = new URLSearchParams(await readBody(req));
    const code = Buffer.from(JSON.stringify({ email: f.get('email'), name: f.get('name') })).toString('base64url');
    const to = new URL(f.get('redirect_uri'));
    to.searchParams.set('code', code);
    to.searchParams.set('state', f.get('state') || '');
    return send(res, 303, '', { Location: to.toString() });
  }
  return send(res, 404, 'not found');
});

// ------------------------------------------------------------------ bank simulator pay page
const bank = http.createServer(async (req, res) => {
  const u = new URL(req.url, bankUrl);
  if (u.pathname === '/pay' && req.method === 'GET') {
    const o = orders.get(u.searchParams.get('token'));
    if (!o) return send(res, 404, page('Unknown', '<p>Unknown payment.</p>'));
    const t = esc(u.searchParams.get('token'));
    return send(res, 200, page('Preview bank', `<h1>Preview bank</h1><p>Pay ₹${(o.tx.amount / 100).toFixed(2)} to Onramp</p>
<form method="post" action="/pay/approve"><input type="hidden" name="token" value="${t}"><button data-testid="bank-approve">Approve</button></form>
<form method="post" action="/pay/decline"><input type="hidden" name="token" value="${t}"><button data-testid="bank-decline">Decline</button></form>`));
  }
  if ((u.pathname === '/pay/approve' || u.pathname === '/pay/decline') && req.method === 'POST') {
    const f = new URLSearchParams(await readBody(req));
    const o = orders.get(f.get('token'));
    if (!o) return send(res, 404, page('Unknown', '<p>Unknown payment.</p>'));
    if (o.bankStatus !== 'PENDING') return send(res, 409, page('Done', '<p>This payment is already final.</p>'));
    const ok = u.pathname.endsWith('approve');
    o.bankStatus = ok ? 'SUCCESS' : 'FAILURE';
    setTimeout(() => {
      o.tx.status = ok ? 'success' : 'failure';
      o.tx.updated_at = now();
    }, webhookDelay);
    return send(res, 303, '', { Location: `${appUrl}/dashboard` });
  }
  return send(res, 404, 'not found');
});

app.listen(port(appListen), host(appListen), () => {
  bank.listen(port(bankListen), host(bankListen), () => {
    idp.listen(port(idpListen), host(idpListen), () => {
      console.log(`preview (not the real server): ${appUrl}/  bank ${bankUrl}  idp ${idpUrl}`);
    });
  });
});
for (const s of ['SIGINT', 'SIGTERM']) process.on(s, () => process.exit(0));
