// Browser and journey helpers shared by the e2e tests: playwright-core driving the
// system Chromium (no browser downloads), data-testid locators only.
import fs from 'node:fs/promises';
import path from 'node:path';
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { repoRoot, startServer } from './server.mjs';

export const WAIT_MS = 15_000; // every single wait is bounded by this
export const JOURNEY_TIMEOUT_MS = 120_000;
export const screenshotDir = path.join(repoRoot, 'target', 'e2e-screenshots');

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Retry `fn` until it stops throwing, or rethrow its last error after `timeout`. */
export async function eventually(fn, { timeout = WAIT_MS, interval = 200, message } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) {
        if (message) e.message = `${message} (after ${timeout} ms): ${e.message}`;
        throw e;
      }
    }
    await sleep(interval);
  }
}

/** Format integer paise the way the page must show them (₹1,00,000.00). */
export function rupees(paise) {
  const r = String(Math.trunc(paise / 100));
  const p = String(paise % 100).padStart(2, '0');
  const grouped = r.length <= 3 ? r : r.slice(0, -3).replace(/\B(?=(\d{2})+(?!\d))/g, ',') + ',' + r.slice(-3);
  return `₹${grouped}.${p}`;
}

/**
 * Declare one journey (= one test file): starts a fresh server and browser for the
 * file, hands each test a new browser context + page, records page errors and CSP
 * violations, and takes a screenshot at the end (success or failure; `{ shot }` names it
 * when a file has several journeys). A journey with more than one person calls
 * `newPage(name)` for another page in a browser context of its own (its own cookies),
 * watched and photographed the same way (`<shot>-<name>.png`).
 */
export function journeyFile({ label, serverEnv = {} }) {
  const ctx = { server: null, browser: null };

  before(async () => {
    await fs.mkdir(screenshotDir, { recursive: true });
    ctx.server = await startServer({ env: serverEnv, label });
    ctx.browser = await launchBrowser();
  });

  after(async () => {
    if (ctx.browser) await ctx.browser.close().catch(() => {});
    if (ctx.server) await ctx.server.stop();
  });

  /** A new context and page; page errors and CSP violations go into `problems`. */
  async function openPage(t, problems, who, shot) {
    const context = await ctx.browser.newContext({
      baseURL: ctx.server.baseURL,
      viewport: { width: 1000, height: 900 },
      locale: 'en-IN',
      timezoneId: 'Asia/Kolkata',
    });
    context.setDefaultTimeout(WAIT_MS);
    context.setDefaultNavigationTimeout(WAIT_MS);
    const page = await context.newPage();

    const appOrigin = new URL(ctx.server.baseURL).origin;
    const prefix = who ? `[${who}] ` : '';
    page.on('pageerror', (e) => problems.push(`${prefix}uncaught error on page: ${e.message}`));
    page.on('console', (m) => {
      const text = m.text();
      if (m.type() === 'error' && /Content Security Policy/i.test(text)) {
        // Avatars come from the identity provider; an http: picture blocked by
        // img-src is cosmetic (the page falls back to initials). Scripts and styles are not.
        if (/img-src/.test(text)) t.diagnostic(`${prefix}CSP (image, tolerated): ${text}`);
        else if (page.url().startsWith(appOrigin)) problems.push(`${prefix}CSP violation: ${text}`);
      }
    });
    return { context, page, name: who ? `${shot}-${who}` : shot };
  }

  /** `shot` names the screenshots (`<shot>.png`); the file's label unless given. */
  function journey(name, fn, { shot = label } = {}) {
    test(name, { timeout: JOURNEY_TIMEOUT_MS }, async (t) => {
      const problems = [];
      const main = await openPage(t, problems, null, shot);
      const opened = [main];
      const { page, context } = main;
      const newPage = async (who) => {
        const other = await openPage(t, problems, who, shot);
        opened.push(other);
        return other.page;
      };

      const shotAll = async (suffix = '') => {
        const files = [];
        for (const o of opened) {
          const file = path.join(screenshotDir, `${o.name}${suffix}.png`);
          await o.page.screenshot({ path: file, fullPage: true }).catch(() => {});
          files.push(file);
        }
        return files;
      };

      try {
        await fn({ page, context, server: ctx.server, t, newPage });
        assert.deepEqual(problems, [], 'the page logged errors');
        await shotAll();
      } catch (e) {
        const files = await shotAll('-failure');
        const where = opened.length === 1
          ? `\n  page URL: ${page.url()}\n  screenshot: ${files[0]}`
          : opened.map((o, i) => `\n  ${o.name}: page URL ${o.page.url()}, screenshot ${files[i]}`).join('');
        e.message += where +
          (problems.length ? `\n  page problems:\n    ${problems.join('\n    ')}` : '') +
          `\n  server output (tail):\n${ctx.server.logs().split('\n').slice(-40).join('\n')}`;
        throw e;
      } finally {
        for (const o of opened) await o.context.close().catch(() => {});
      }
    });
  }

  return { journey, ctx };
}

// ------------------------------------------------------------------ steps

const tid = (page, id) => page.getByTestId(id);

/** Sign in through the development identity provider and land on the dashboard. */
export async function signIn(page, { email, name }) {
  await page.goto('/');
  await tid(page, 'login-google').click();
  await tid(page, 'idp-email').waitFor({ state: 'visible' });
  await tid(page, 'idp-email').fill(email);
  await tid(page, 'idp-name').fill(name);
  await tid(page, 'idp-continue').click();
  await tid(page, 'user-name').waitFor({ state: 'visible' });
  await expectText(page, 'user-name', name);
}

/** Wait until the element's trimmed text equals `expected`. */
export async function expectText(page, testId, expected, opts = {}) {
  const loc = tid(page, testId).first();
  await eventually(async () => {
    const text = (await loc.textContent({ timeout: 1_000 }))?.trim();
    assert.equal(text, expected, `[data-testid=${testId}] text`);
  }, opts);
}

export async function expectBalance(page, paise, opts) {
  await expectText(page, 'balance', rupees(paise), opts);
}

/** Fill the amount, submit, and wait for the bank's pay page. */
export async function startDeposit(page, amountText) {
  await tid(page, 'deposit-amount').fill(amountText);
  await tid(page, 'deposit-submit').click();
  await eventually(async () => {
    const approve = tid(page, 'bank-approve');
    assert.ok(await approve.isVisible(), 'bank pay page (bank-approve) visible');
  }, { message: 'did not reach the bank pay page' });
}

/** Click approve/decline on the bank page and wait to be back on the app's dashboard. */
export async function answerBank(page, server, action /* 'approve' | 'decline' */) {
  await tid(page, action === 'approve' ? 'bank-approve' : 'bank-decline').click();
  await page.waitForURL((u) => u.origin === new URL(server.baseURL).origin, { timeout: WAIT_MS });
  await tid(page, 'balance').waitFor({ state: 'visible' });
}

/** The rows shown in the transaction list, as plain objects. */
export async function rows(page) {
  return tid(page, 'transactions').getByTestId('transaction').evaluateAll((els) =>
    els.map((el) => ({
      id: el.getAttribute('data-id'),
      status: el.getAttribute('data-status'),
      kind: el.getAttribute('data-kind'),
      title: el.querySelector('[data-testid="transaction-title"]')?.textContent.trim() ?? null,
      amount: el.querySelector('[data-testid="transaction-amount"]')?.textContent.trim() ?? null,
      label: el.querySelector('[data-testid="transaction-status"]')?.textContent.trim() ?? null,
      text: el.textContent.replace(/\s+/g, ' ').trim(),
    })),
  );
}

/** GET a JSON API with the page's cookies. */
export async function apiGet(page, pathname) {
  const res = await page.request.get(pathname, { failOnStatusCode: false });
  let body;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return { status: res.status(), body };
}

export { assert, tid };
