// Journey 5: sign out → the sign-in button is back and the session is gone server-side.
import { journeyFile, signIn, apiGet, tid, assert, eventually } from '../lib/browser.mjs';

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

  // The old cookie value is dead server-side too, even if a client kept it: at once on the
  // process that logged it out, and within a second on every other process of the service
  // (config.md: each re-reads a session it holds once its copy is 500 ms old). A single process
  // refuses it at the first try.
  const replay = () => page.request.get('/api/user/me', {
    headers: { Cookie: `session_id=${before.value}` },
    failOnStatusCode: false,
  });
  const refused = async () => {
    assert.equal((await replay()).status(), 401, 'the old session_id no longer works');
  };
  if (process.env.E2E_PG_PORT) {
    await eventually(refused, { timeout: 1_000, interval: 50 });
  } else {
    await refused();
  }

  await page.reload();
  await tid(page, 'login-google').waitFor({ state: 'visible' });
});
