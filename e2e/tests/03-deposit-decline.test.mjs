// Journey 3: decline at the bank → a failed row, balance unchanged.
import {
  journeyFile, signIn, startDeposit, answerBank, expectBalance, rows, apiGet, assert, eventually, sleep,
} from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'deposit-decline' });

journey('add ₹100 and decline it at the bank', async ({ page, server }) => {
  await signIn(page, { email: 'decline@example.com', name: 'Decline Person' });
  await expectBalance(page, 0);

  await startDeposit(page, '100');
  await answerBank(page, server, 'decline');

  await eventually(async () => {
    const list = await rows(page);
    assert.equal(list.length, 1, 'one transaction row');
    assert.equal(list[0].status, 'failure');
    assert.equal(list[0].label, 'Failed');
  }, { message: 'the row did not become failed' });
  await sleep(500);
  await expectBalance(page, 0);

  const balance = await apiGet(page, '/api/balance');
  assert.deepEqual(balance, { status: 200, body: { amount: 0, currency: 'INR' } });
  const txs = await apiGet(page, '/api/transactions');
  assert.equal(txs.body.items.length, 1);
  assert.equal(txs.body.items[0].status, 'failure');
});
