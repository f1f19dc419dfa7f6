// Journey 2: add ₹100, approve at the bank, come back and see ₹100.00 and a successful row.
import {
  journeyFile, signIn, startDeposit, answerBank, expectBalance, rows, apiGet, assert, eventually,
} from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'deposit-approve' });

journey('add ₹100 and approve it at the bank', async ({ page, server }) => {
  await signIn(page, { email: 'approve@example.com', name: 'Approve Person' });
  await expectBalance(page, 0);

  await startDeposit(page, '100');
  await answerBank(page, server, 'approve');
  assert.equal(new URL(page.url()).pathname, '/dashboard', 'the bank returns the browser to /dashboard');

  await expectBalance(page, 10000);
  await eventually(async () => {
    const list = await rows(page);
    assert.equal(list.length, 1, 'one transaction row');
    assert.equal(list[0].status, 'success');
    assert.equal(list[0].label, 'Successful');
    assert.match(list[0].text, /₹100\.00/);
  }, { message: 'the row did not become successful' });

  const balance = await apiGet(page, '/api/balance');
  assert.deepEqual(balance, { status: 200, body: { amount: 10000, currency: 'INR' } });
  const txs = await apiGet(page, '/api/transactions');
  assert.equal(txs.status, 200);
  assert.equal(txs.body.items.length, 1);
  assert.equal(txs.body.items[0].status, 'success');
  assert.equal(txs.body.items[0].amount, 10000);
});
