// Journey 9: money back to the bank. Alice adds ₹100 and withdraws ₹30 with the Withdraw form: the
// balance drops at once and the row shows as pending, then turns successful without a reload.
// A withdrawal of ₹10.13 (the bank fails amounts ending in 13) shows as pending, then failed,
// and the balance comes back. Withdrawing more than the balance is refused on her page.
import crypto from 'node:crypto';
import {
  journeyFile, signIn, startDeposit, answerBank, expectBalance, rows, tid, assert, eventually,
} from '../lib/browser.mjs';

// The bank takes a few seconds to pay out, so that the pending row can be seen.
const { journey } = journeyFile({
  label: 'withdraw',
  serverEnv: { ONRAMP__DEV__PAYOUT_DELAY_MS: '3000' },
});

const isWithdrawalPost = (req) =>
  req.method() === 'POST' && new URL(req.url()).pathname === '/api/withdrawals';

/** Fill the Withdraw form and press Withdraw; resolves to the server's answer. */
async function withdraw(page, amountText) {
  await tid(page, 'withdraw-amount').fill(amountText);
  const answer = page.waitForResponse((res) => isWithdrawalPost(res.request()));
  await tid(page, 'withdraw-submit').click();
  const res = await answer;
  return { status: res.status(), body: await res.json().catch(() => null) };
}

/** The row of withdrawal `id` once it has `status`. */
async function rowOf(page, id, status) {
  let found = null;
  await eventually(async () => {
    found = (await rows(page)).find((r) => r.id === id);
    assert.ok(found, `row ${id} is listed`);
    assert.equal(found.status, status, `row ${id} is ${status}`);
  }, { timeout: 20_000, message: `withdrawal ${id} never became ${status}` });
  return found;
}

journey('withdraw to the bank: pending, then final, and a failed payout comes back', async ({ page, server }) => {
  const tag = crypto.randomBytes(4).toString('hex');
  await signIn(page, { email: `alice-${tag}@example.test`, name: 'Alice Withdraws' });
  await startDeposit(page, '100');
  await answerBank(page, server, 'approve');
  await expectBalance(page, 10000);
  await page.evaluate(() => { window.__e2eNoReload = true; });

  const paid = await withdraw(page, '30');
  assert.equal(paid.status, 201, JSON.stringify(paid.body));
  await expectBalance(page, 7000);
  const pending = await rowOf(page, paid.body.id, 'processing');
  assert.equal(pending.kind, 'withdrawal');
  assert.equal(pending.label, 'Pending');
  assert.match(pending.amount, /30\.00/);
  assert.ok(await tid(page, 'withdraw-done').isVisible(), 'the form says it is on its way');
  const done = await rowOf(page, paid.body.id, 'success');
  assert.equal(done.label, 'Successful');
  await expectBalance(page, 7000);

  const failing = await withdraw(page, '10.13');
  assert.equal(failing.status, 201, JSON.stringify(failing.body));
  await expectBalance(page, 5987);
  await rowOf(page, failing.body.id, 'processing');
  const failed = await rowOf(page, failing.body.id, 'failure');
  assert.equal(failed.label, 'Failed');
  await expectBalance(page, 7000);

  const refused = await withdraw(page, '500');
  assert.equal(refused.status, 409);
  await eventually(async () => {
    assert.ok(await tid(page, 'error').isVisible(), 'the refusal is shown');
    assert.match(await tid(page, 'error').textContent(), /₹70\.00/);
  });
  await expectBalance(page, 7000);
  assert.equal(await page.evaluate(() => window.__e2eNoReload), true, 'no reload all along');
});
