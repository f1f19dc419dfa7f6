// Journey 1: sign in through the development identity provider and see your name.
import { journeyFile, signIn, apiGet, expectText, expectBalance, tid, assert, eventually } from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'sign-in' });

journey('a cancelled sign-in shows a readable message and cleans the URL', async ({ page }) => {
  await page.goto('/?error=access_denied');
  await tid(page, 'login-google').waitFor({ state: 'visible' });
  await expectText(page, 'login-error', 'Sign-in was cancelled.');
  await eventually(async () => assert.equal(new URL(page.url()).search, '', 'query stripped'));
});

journey('sign in with the dev provider and see your name', async ({ page }) => {
  await page.goto('/');
  await tid(page, 'login-google').waitFor({ state: 'visible' });
  assert.equal(await tid(page, 'user-name').isVisible(), false, 'no dashboard before sign-in');
  assert.equal((await apiGet(page, '/api/user/me')).status, 401, 'GET /api/user/me before sign-in');

  await signIn(page, { email: 'asha@example.com', name: 'Asha Rao' });

  await expectText(page, 'user-name', 'Asha Rao');
  await expectBalance(page, 0);
  for (const id of ['deposit-amount', 'deposit-submit', 'logout', 'transactions']) {
    await tid(page, id).waitFor({ state: 'attached' });
  }
  const me = await apiGet(page, '/api/user/me');
  assert.equal(me.status, 200);
  assert.equal(me.body.email, 'asha@example.com');
  assert.equal(me.body.name, 'Asha Rao');

  // The session survives a reload.
  await page.reload();
  await expectText(page, 'user-name', 'Asha Rao');
});
