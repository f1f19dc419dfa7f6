// Journey 8: person to person. Alice adds money and sends some to Bob with the Send form; Bob's
// open dashboard shows it without a reload. Sending more than her balance, or to herself, is
// refused on her page with the server's message, and moves nothing.
import crypto from 'node:crypto';
import {
  journeyFile, signIn, startDeposit, answerBank, expectBalance, rows, apiGet, tid, assert, eventually, sleep,
} from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'transfer' });

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const isTransferPost = (req) => req.method() === 'POST' && new URL(req.url()).pathname === '/api/transfers';

/** Record every POST /api/transfers the page sends: its Idempotency-Key and body. */
function watchTransfers(page) {
  const sent = [];
  page.on('request', (req) => {
    if (isTransferPost(req)) {
      sent.push({ key: req.headers()['idempotency-key'], body: JSON.parse(req.postData() || 'null') });
    }
  });
  return sent;
}

/**
 * Fill the Send form and press Send (`click: 'dblclick'` for a double click); resolves to
 * the server's answer `{ status, body }`.
 */
async function send(page, to, amountText, { click = 'click' } = {}) {
  await tid(page, 'transfer-to').fill(to);
  await tid(page, 'transfer-amount').fill(amountText);
  const answer = page.waitForResponse((res) => isTransferPost(res.request()));
  await tid(page, 'transfer-submit')[click]();
  const res = await answer;
  let body;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return { status: res.status(), body };
}

/** The error element shows a message (at least `pattern`, when given). */
async function expectError(page, what, pattern) {
  await eventually(async () => {
    assert.ok(await tid(page, 'error').isVisible(), `[data-testid=error] visible (${what})`);
    const text = (await tid(page, 'error').textContent()).trim();
    assert.ok(text.length > 5, `[data-testid=error] has a message (${what}; got "${text}")`);
    if (pattern) assert.match(text, pattern, what);
  }, { message: `no error shown for ${what}` });
}

journey('send money to another person: it shows on their open dashboard without a reload', async ({ page, server, newPage }) => {
  const tag = crypto.randomBytes(4).toString('hex');
  const alice = { email: `alice-${tag}@example.test`, name: 'Alice Sender' };
  const bob = { email: `bob-${tag}@example.test`, name: 'Bob Receiver' };

  const alicePage = page;
  const bobPage = await newPage('bob');
  await signIn(alicePage, alice);
  await signIn(bobPage, bob);
  await expectBalance(bobPage, 0);

  // Alice adds ₹100 at the bank.
  await startDeposit(alicePage, '100');
  await answerBank(alicePage, server, 'approve');
  await expectBalance(alicePage, 10000);

  // Bob's dashboard stays open: mark this document; a reload or navigation would lose the mark.
  assert.equal(await bobPage.evaluate(() => document.visibilityState), 'visible', "Bob's page is visible");
  await bobPage.evaluate(() => { window.__e2eNoReload = true; });
  const bobNavigations = [];
  bobPage.on('framenavigated', (f) => { if (f === bobPage.mainFrame()) bobNavigations.push(f.url()); });
  await sleep(2500); // at least one look at Bob's unchanged balance, which must change nothing
  await expectBalance(bobPage, 0, { timeout: 1000 });
  assert.deepEqual(await rows(bobPage), [], 'Bob has no transactions yet');

  // Alice sends Bob ₹12.50 with a double click: one transfer.
  const sent = watchTransfers(alicePage);
  const answer = await send(alicePage, bob.email, '12.50', { click: 'dblclick' });
  assert.equal(answer.status, 201, `POST /api/transfers answered 201 (got ${JSON.stringify(answer)})`);
  assert.equal(answer.body.status, 'success');
  assert.equal(answer.body.amount, 1250);
  assert.equal(answer.body.currency, 'INR');
  assert.deepEqual(answer.body.to, { name: bob.name, email: bob.email });

  await expectBalance(alicePage, 8750);
  assert.equal(await tid(alicePage, 'transfer-to').inputValue(), '', 'the Send form is cleared (to)');
  assert.equal(await tid(alicePage, 'transfer-amount').inputValue(), '', 'the Send form is cleared (amount)');
  assert.equal(await tid(alicePage, 'error').isVisible(), false, 'no error after a successful send');
  await eventually(async () => {
    const list = await rows(alicePage);
    assert.equal(list.length, 2, 'Alice: the deposit and the send');
    assert.equal(list[0].kind, 'transfer_out');
    assert.equal(list[0].status, 'success');
    assert.equal(list[0].label, 'Successful');
    assert.equal(list[0].title, `Sent to ${bob.name} (${bob.email})`);
    assert.equal(list[0].amount, '−₹12.50', 'a send shows as a debit');
    assert.equal(list[1].kind, 'deposit');
    assert.equal(list[1].amount, '+₹100.00');
  }, { message: "Alice's list does not show the send" });

  // Bob sees it arrive without a reload.
  await expectBalance(bobPage, 1250, { timeout: 10_000 });
  await eventually(async () => {
    const list = await rows(bobPage);
    assert.equal(list.length, 1, 'Bob: one transaction');
    assert.equal(list[0].kind, 'transfer_in');
    assert.equal(list[0].status, 'success');
    assert.equal(list[0].label, 'Successful');
    assert.equal(list[0].title, `Received from ${alice.name} (${alice.email})`);
    assert.equal(list[0].amount, '+₹12.50');
  }, { message: "Bob's list does not show the money received" });
  assert.equal(await bobPage.evaluate(() => window.__e2eNoReload === true), true, "Bob's page was not reloaded");
  assert.deepEqual(bobNavigations, [], 'no navigation happened on Bob\'s page');

  await sleep(500);
  assert.equal(sent.length, 1, 'the double click sent one POST /api/transfers');
  assert.match(String(sent[0].key), UUID_RE, 'the POST carries a UUID Idempotency-Key');
  assert.deepEqual(sent[0].body, { to: bob.email, amount: 1250 });

  assert.deepEqual(await apiGet(alicePage, '/api/balance'), { status: 200, body: { amount: 8750, currency: 'INR' } });
  assert.deepEqual(await apiGet(bobPage, '/api/balance'), { status: 200, body: { amount: 1250, currency: 'INR' } });
  const bobTxs = await apiGet(bobPage, '/api/transactions');
  assert.equal(bobTxs.status, 200);
  assert.equal(bobTxs.body.items.length, 1);
  assert.equal(bobTxs.body.items[0].kind, 'transfer_in');
  assert.equal(bobTxs.body.items[0].amount, 1250);
  assert.deepEqual(bobTxs.body.items[0].counterparty, { name: alice.name, email: alice.email });

  // More than her balance: refused by the server, shown on her page, nothing moves.
  const tooMuch = await send(alicePage, bob.email, '100');
  assert.equal(tooMuch.status, 409, `more than the balance: 409 (got ${JSON.stringify(tooMuch)})`);
  assert.equal(tooMuch.body?.error?.code, 'insufficient_funds');
  await expectError(alicePage, 'more than the balance');
  assert.equal((await tid(alicePage, 'error').textContent()).trim(), tooMuch.body.error.message,
    "the server's message is shown");
  await expectBalance(alicePage, 8750);
  assert.equal(await tid(alicePage, 'transfer-amount').inputValue(), '100', 'a refused send keeps the form');

  // To herself, written in another letter case: refused too.
  const toSelf = await send(alicePage, alice.email.toUpperCase(), '1');
  assert.equal(toSelf.status, 400, `a send to herself: 400 (got ${JSON.stringify(toSelf)})`);
  assert.equal(toSelf.body?.error?.code, 'self_transfer');
  await expectError(alicePage, 'a send to her own email');
  assert.equal((await tid(alicePage, 'error').textContent()).trim(), toSelf.body.error.message,
    "the server's message is shown");

  // Nobody with that email: refused.
  const unknown = await send(alicePage, `nobody-${tag}@example.test`, '1');
  assert.equal(unknown.status, 404, `an unknown recipient: 404 (got ${JSON.stringify(unknown)})`);
  assert.equal(unknown.body?.error?.code, 'unknown_recipient');
  await expectError(alicePage, 'an unknown recipient');

  // Not an amount, over the maximum, or not an email: refused on the page, nothing sent.
  const before = sent.length;
  const bad = [
    [bob.email, 'abc', /^Enter an amount in rupees/, '"abc"'],
    [bob.email, '0', /more than ₹0/, '"0"'],
    [bob.email, '', /^Enter an amount to send\.$/, 'no amount'],
    // The maximum comes from GET /api/settings (transfer.max_amount: the default ₹1,00,000).
    [bob.email, '100001', /^The most you can send at once is ₹1,00,000\.00\.$/, 'over the maximum'],
    ['bob', '1', /email/, 'not an email'],
  ];
  for (const [to, amount, pattern, what] of bad) {
    await tid(alicePage, 'transfer-to').fill(to);
    await tid(alicePage, 'transfer-amount').fill(amount);
    await tid(alicePage, 'transfer-submit').click();
    await expectError(alicePage, what, pattern);
  }
  await sleep(300);
  assert.equal(sent.length, before, 'nothing was sent for bad input');

  // Nothing moved after the first send.
  await sleep(2500); // a balance check on both pages
  await expectBalance(alicePage, 8750, { timeout: 1000 });
  await expectBalance(bobPage, 1250, { timeout: 1000 });
  assert.equal((await rows(alicePage)).length, 2, 'Alice still has two rows');
  assert.equal((await rows(bobPage)).length, 1, 'Bob still has one row');
  assert.deepEqual(await apiGet(alicePage, '/api/balance'), { status: 200, body: { amount: 8750, currency: 'INR' } });
  assert.deepEqual(await apiGet(bobPage, '/api/balance'), { status: 200, body: { amount: 1250, currency: 'INR' } });
  assert.equal((await apiGet(alicePage, '/api/transactions')).body.items.length, 2);
});

journey('the open dashboard watches the balance, and stops after sign-out', async ({ page, server }) => {
  const tag = crypto.randomBytes(4).toString('hex');
  const person = { email: `watch-${tag}@example.test`, name: 'Watch Person' };
  await signIn(page, person);
  await expectBalance(page, 0);

  const balanceReads = [];
  page.on('request', (req) => {
    if (req.method() === 'GET' && new URL(req.url()).pathname === '/api/balance') balanceReads.push(Date.now());
  });
  await sleep(4500);
  assert.ok(balanceReads.length >= 1, `the page looked at the balance while open (${balanceReads.length} reads in 4.5 s)`);
  assert.ok(balanceReads.length <= 5, `and cheaply (${balanceReads.length} reads in 4.5 s)`);

  await tid(page, 'logout').click();
  await tid(page, 'login-google').waitFor({ state: 'visible' });
  const afterSignOut = balanceReads.length;
  await sleep(4500);
  assert.equal(balanceReads.length, afterSignOut, 'no balance reads after sign-out');

  // The session ends elsewhere (another tab signs out): the watch meets a 401, shows the
  // sign-in card by itself, and stops.
  await signIn(page, person);
  await expectBalance(page, 0);
  const out = await page.request.post('/api/auth/logout', {
    headers: { Origin: new URL(server.baseURL).origin },
    failOnStatusCode: false,
  });
  assert.equal(out.status(), 204, 'signed out from outside the page');
  await tid(page, 'login-google').waitFor({ state: 'visible', timeout: 6000 });
  const afterExpiry = balanceReads.length;
  await sleep(4500);
  assert.equal(balanceReads.length, afterExpiry, 'no balance reads after the 401');
}, { shot: 'transfer-balance-watch' });
