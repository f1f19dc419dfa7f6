// Onramp wallet page: plain ES modules, no build step. index.html loads this file with
// <script type="module">, which runs once the document is parsed.
//
//   money.js         formats paise, parses rupee input (the only place that does either)
//   api.js           fetch wrapper; JSON error objects become ApiError / Unauthorized
//   settings.js      GET /api/settings: the deposit and transfer limits
//   idempotency.js   Idempotency-Key values, one per intended deposit or transfer
//   state.js         who is signed in, and the sign-out generation
//   dom.js           the page's elements, showMessage
//   transactions.js  balance and transaction list, polling while a deposit is pending and
//                    watching the balance (money received) while the page is visible
//   deposit.js       the "Add money" and "Send money" forms
//   withdraw.js      the "Withdraw to your bank" form
//   session.js       sign-in, sign-out, which view shows
import { findElements } from './dom.js';
import { createDepositForm, createTransferForm } from './deposit.js';
import { formatMoney, parseRupees } from './money.js';
import { createSession } from './session.js';
import { state } from './state.js';
import { createWallet } from './transactions.js';
import { createWithdrawForm } from './withdraw.js';

const els = findElements();

let session = null;
const onUnauthorized = () => session.showSignedOut();
const wallet = createWallet(els, { onUnauthorized });
const deposit = createDepositForm(els, { refresh: wallet.refresh, onUnauthorized });
const transfer = createTransferForm(els, { refresh: wallet.refresh, onUnauthorized });
const withdraw = createWithdrawForm(els, { refresh: wallet.refresh, onUnauthorized });
session = createSession(els, { wallet, forms: [deposit, transfer, withdraw] });

// Catch up when the tab comes back (and on back/forward-cache restores); the refresh also
// resumes watching the balance, which pauses while the page is hidden.
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && state.user) wallet.refresh();
});
window.addEventListener('focus', () => {
  if (state.user) wallet.refresh();
});
window.addEventListener('pageshow', (ev) => {
  if (ev.persisted) {
    deposit.setSubmitting(false);
    transfer.setSubmitting(false);
    withdraw.setSubmitting(false);
    session.load();
  }
});

// Exposed for tests and debugging; harmless.
window.onramp = {
  formatMoney,
  parseRupees: (raw) => parseRupees(raw, deposit.limits()),
};

session.readLoginError();
session.showView('loading');
deposit.loadLimits();
transfer.loadLimits();
withdraw.loadLimits();
session.load();
