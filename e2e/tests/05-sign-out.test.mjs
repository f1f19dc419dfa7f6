// Journey 5: sign out → the sign-in button is back and the session is gone server-side.
import { journeyFile, signIn, apiGet, tid, assert } from '../lib/browser.mjs';

const { journey } = journeyFile({ label: 'sign-out' });

journey('sign out ends the session', async ({ page, context }) => {
  await signIn(page, { email: 'bye@example.com', name: 'Bye Person' });
  assert.equal((await apiGet(page, '/api/user/me')).status, 200);
  const before = (await context.cookies()).find((c) => c.name === 'session_id');
  assert.ok(before, 'a session_id cookie is set after sign-in');
  assert.equal(before.httpOnly, true, 'session_id is HttpOnly');

  await tid(page, 'logout').click();
  await tid(page, 'login-google').waitFor({ state: 'visible' });
  assert.equal(await tid(page, 'user-name').isVisible(), false);

  assert.equal((await apiGet(page, '/api/user/me')).status, 401, 'GET /api/user/me after sign-out (page.request)');
  const inPage = await page.evaluate(async () => (await fetch('/api/user/me', { credentials: 'same-origin' })).status);
  assert.equal(inPage, 401, 'GET /api/user/me after sign-out (fetch in the page)');

  // The old cookie value is dead server-side too, even if a client kept it.
  const replay = await page.request.get('/api/user/me', {
    headers: { Cookie: `session_id=${before.value}` },
    failOnStatusCode: false,
  });
  assert.equal(replay.status(), 401, 'the old session_id no longer works');

  await page.reload();
  await tid(page, 'login-google').waitFor({ state: 'visible' });
});
