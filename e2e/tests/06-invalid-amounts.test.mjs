// Journey 6: invalid amounts are refused on the page and nothing is sent or stored.
import { journeyFile, signIn, expectBalance, rows, apiGet, tid, assert, eventually, sleep } from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'invalid-amounts' });

journey('invalid amounts show an error and create nothing', async ({ page }) => {
  await signIn(page, { email: 'strict@example.com', name: 'Strict Person' });
  await expectBalance(page, 0);

  const depositPosts = [];
  page.on('request', (r) => {
    if (r.method() === 'POST' && new URL(r.url()).pathname === '/api/deposit') depositPosts.push(r.postData());
  });

  for (const amount of ['0', '-5', 'abc', '100001']) {
    await tid(page, 'deposit-amount').fill(amount);
    await tid(page, 'deposit-submit').click();
    await eventually(async () => {
      assert.ok(await tid(page, 'deposit-error').isVisible(), `deposit-error visible for "${amount}"`);
      const text = (await tid(page, 'deposit-error').textContent()).trim();
      assert.ok(text.length > 5, `deposit-error has a message for "${amount}" (got "${text}")`);
    });
    assert.equal(new URL(page.url()).pathname, '/', `still on the dashboard after "${amount}"`);
  }

  await sleep(500);
  assert.deepEqual(depositPosts, [], 'no POST /api/deposit was sent');
  assert.deepEqual(await rows(page), [], 'the transaction list is empty');
  const txs = await apiGet(page, '/api/transactions');
  assert.equal(txs.status, 200);
  assert.deepEqual(txs.body.items, [], 'GET /api/transactions has no items');
  await expectBalance(page, 0);
});
