// Journey 4: the bank's webhook arrives late. The row shows pending first and then
// turns successful without a reload.
import {
  journeyFile, signIn, startDeposit, answerBank, expectBalance, rows, apiGet, assert, eventually,
} from '../lib/browser.mjs';

const DELAY_MS = 4000;
const { journey } = journeyFile({
  label: 'late-webhook',
  serverEnv: { ONRAMP__DEV__WEBHOOK_DELAY_MS: String(DELAY_MS) },
});

journey('a late webhook turns a pending row into success without reload', async ({ page, server }) => {
  await signIn(page, { email: 'late@example.com', name: 'Late Person' });
  await startDeposit(page, '100');
  const approvedAt = Date.now();
  await answerBank(page, server, 'approve');

  // Pending first (the webhook is still being held by the bank).
  await eventually(async () => {
    const list = await rows(page);
    assert.equal(list.length, 1, 'one transaction row');
    assert.equal(list[0].status, 'processing');
    assert.equal(list[0].label, 'Pending');
  }, { timeout: 3000, message: 'the row was not shown as pending' });
  assert.ok(Date.now() - approvedAt < DELAY_MS, 'pending was observed before the webhook could be delivered');
  await expectBalance(page, 0, { timeout: 1000 });

  // Mark this document; a reload or navigation would lose the mark.
  await page.evaluate(() => { window.__e2eNoReload = true; });
  const navigations = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });

  await eventually(async () => {
    const list = await rows(page);
    assert.equal(list[0].status, 'success');
    assert.equal(list[0].label, 'Successful');
  }, { timeout: DELAY_MS + 15_000, message: 'the row did not turn successful' });
  await expectBalance(page, 10000);

  assert.equal(await page.evaluate(() => window.__e2eNoReload === true), true, 'the page was not reloaded');
  assert.deepEqual(navigations, [], 'no navigation happened');

  const balance = await apiGet(page, '/api/balance');
  assert.deepEqual(balance, { status: 200, body: { amount: 10000, currency: 'INR' } });
});
