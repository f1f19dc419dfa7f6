// Journey 7: a deposit retried after a failure keeps its Idempotency-Key (so it can never be
// made twice), and the deposit limit the page shows and enforces comes from GET /api/settings.
import {
  journeyFile, signIn, answerBank, expectBalance, expectText, rows, apiGet, tid, assert, eventually, sleep,
} from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'retry-and-limits' });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const isDepositPost = (req) => req.method() === 'POST' && new URL(req.url()).pathname === '/api/deposit';

/** Record every POST /api/deposit; `fail(n)` may answer the n-th (from 0) itself instead of the server. */
async function watchDeposits(page, fail) {
  const sent = [];
  await page.route('**/api/deposit', async (route) => {
    const req = route.request();
    if (!isDepositPost(req)) return route.continue();
    const n = sent.length;
    sent.push({ key: req.headers()['idempotency-key'], body: JSON.parse(req.postData() || 'null') });
    const answer = fail(n);
    if (answer === 'abort') return route.abort('connectionreset');
    if (answer) return route.fulfill(answer);
    return route.continue();
  });
  return sent;
}

async function submit(page, amountText) {
  await tid(page, 'deposit-amount').fill(amountText);
  await tid(page, 'deposit-submit').click();
}

async function expectDepositError(page, pattern, what) {
  await eventually(async () => {
    assert.ok(await tid(page, 'deposit-error').isVisible(), `deposit-error visible (${what})`);
    assert.match((await tid(page, 'deposit-error').textContent()).trim(), pattern, what);
  }, { message: `no deposit error for ${what}` });
}

journey('a retried deposit reuses its Idempotency-Key and is made once', async ({ page, server }) => {
  await signIn(page, { email: 'retry@example.com', name: 'Retry Person' });
  await expectBalance(page, 0);

  const unavailable = {
    status: 503,
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'unavailable', message: 'Busy right now, try again.' } }),
  };
  // 1st: ₹50 gets a 503. 2nd: ₹100 (a different deposit) gets no answer at all. 3rd: ₹100 again reaches the server.
  const sent = await watchDeposits(page, (n) => [unavailable, 'abort'][n]);

  await submit(page, '50');
  await expectDepositError(page, /^Busy right now, try again\.$/, 'the 503');
  await eventually(async () => assert.equal(await tid(page, 'deposit-submit').isEnabled(), true, 'Add is enabled again'));

  await submit(page, '100');
  await expectDepositError(page, /Could not reach the server/, 'the dropped connection');
  await eventually(async () => assert.equal(await tid(page, 'deposit-submit').isEnabled(), true, 'Add is enabled again'));

  // Press Add again for the same amount, written differently: the same deposit.
  await submit(page, '100.00');
  await tid(page, 'bank-approve').waitFor({ state: 'visible' });

  assert.deepEqual(sent.map((s) => s.body), [{ amount: 5000 }, { amount: 10000 }, { amount: 10000 }], 'bodies sent');
  for (const s of sent) assert.match(String(s.key), UUID_RE, 'each POST carries a UUID Idempotency-Key');
  assert.notEqual(sent[1].key, sent[0].key, 'a different amount is a new deposit with a new key');
  assert.equal(sent[2].key, sent[1].key, 'the retry of ₹100 carries the same Idempotency-Key');

  await answerBank(page, server, 'approve');
  await expectBalance(page, 10000);
  await eventually(async () => {
    const list = await rows(page);
    assert.equal(list.length, 1, 'exactly one transaction row');
    assert.equal(list[0].status, 'success');
  }, { message: 'the deposit did not show as one successful row' });
  const txs = await apiGet(page, '/api/transactions');
  assert.equal(txs.status, 200);
  assert.equal(txs.body.items.length, 1, 'GET /api/transactions has exactly one item');
  assert.equal(txs.body.items[0].amount, 10000);
});

journey('the deposit maximum comes from /api/settings', async ({ page, server }) => {
  const settingsRequests = [];
  await page.route('**/api/settings', (route) => {
    settingsRequests.push(route.request().url());
    return route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ currency: 'INR', deposit: { min_amount: 1, max_amount: 500 } }),
    });
  });
  const sent = await watchDeposits(page, () => null);

  await signIn(page, { email: 'limits@example.com', name: 'Limits Person' });
  await expectBalance(page, 0);
  assert.ok(settingsRequests.length >= 1, 'the page asked GET /api/settings');
  await expectText(page, 'deposit-hint', 'In rupees, up to ₹5. You will approve the payment at your bank.');

  for (const amount of ['6', '5.01']) {
    await submit(page, amount);
    await expectDepositError(page, /^The most you can add at once is ₹5\.00\.$/, `"${amount}" over a ₹5 maximum`);
  }
  await sleep(300);
  assert.deepEqual(sent, [], 'nothing over the maximum was sent');

  // The maximum itself is fine (the server's own limit is much higher).
  await submit(page, '5');
  await tid(page, 'bank-approve').waitFor({ state: 'visible' });
  assert.deepEqual(sent.map((s) => s.body), [{ amount: 500 }]);
  await answerBank(page, server, 'approve');
  await expectBalance(page, 500);
});

journey('without /api/settings the page lets the server decide', async ({ page }) => {
  await page.route('**/api/settings', (route) => route.fulfill({
    status: 500,
    contentType: 'application/json',
    body: JSON.stringify({ error: { code: 'internal', message: 'Something broke.' } }),
  }));
  const sent = await watchDeposits(page, () => null);

  await signIn(page, { email: 'nosettings@example.com', name: 'No Settings' });
  await expectBalance(page, 0);
  await expectText(page, 'deposit-hint', 'In rupees. You will approve the payment at your bank.');

  // Still refused on the page: not an amount at all.
  await submit(page, 'abc');
  await expectDepositError(page, /^Enter an amount in rupees/, '"abc"');
  assert.equal(sent.length, 0, 'nothing sent for "abc"');

  // Past the server's maximum: sent, and the server's own message is shown.
  await submit(page, '100001');
  await eventually(async () => assert.equal(sent.length, 1, 'one POST /api/deposit'));
  assert.deepEqual(sent[0].body, { amount: 10000100 });
  await eventually(async () => {
    assert.ok(await tid(page, 'deposit-error').isVisible(), 'deposit-error visible');
    const text = (await tid(page, 'deposit-error').textContent()).trim();
    assert.ok(text.length > 5 && !/Could not reach/.test(text), `the server's message is shown (got "${text}")`);
  });
  assert.equal(new URL(page.url()).pathname, '/', 'still on the dashboard');
  assert.deepEqual(await rows(page), [], 'no transaction row');
});
