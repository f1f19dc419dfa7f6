// The "Withdraw to your bank" form: checks the amount against the server's limits, then asks the
// server for a withdrawal. The amount leaves the balance at once and the row shows as pending
// until the bank pays it out (or fails it, and the amount comes back). A refusal shows in the
// page's error element.
import { api, ApiError, errorText, Unauthorized } from './api.js';
import { amountLimits } from './deposit.js';
import { refuseField, showMessage, submittingLook } from './dom.js';
import { keyPerIntent } from './idempotency.js';
import { formatMoney, parseRupees } from './money.js';
import { fetchWithdrawalLimits } from './settings.js';
import { state } from './state.js';

const HINT_END = 'From your balance, paid out to your bank.';

/**
 * Whether a refused withdrawal is the server's final word on it, so that the next Withdraw is a
 * new withdrawal with a new key. A 4xx moved nothing (but 429 and 409 request_in_progress may be
 * retried), and 502 bank_refused returned the money. 502 bank_unavailable is not final: the
 * withdrawal exists and waits for the bank, and the same key answers it again rather than making
 * a second one.
 */
function isFinal(err) {
  if (!(err instanceof ApiError)) return false;
  if (err.code === 'bank_refused') return true;
  return err.status >= 400 && err.status < 500 &&
    err.status !== 429 && err.code !== 'request_in_progress';
}

/**
 * `refresh` reloads the wallet (the withdrawal's row, and the balance it left); `onUnauthorized`
 * is called when the session turns out to be gone.
 */
export function createWithdrawForm(els, { refresh, onUnauthorized }) {
  const keys = keyPerIntent();
  let submitting = false;
  const limits = amountLimits(els.withdrawHint, fetchWithdrawalLimits, HINT_END);

  const look = submittingLook(els.withdrawForm, els.withdrawSubmit, [els.withdrawAmount],
    'Withdrawing…', 'Withdraw');
  function setSubmitting(on) {
    submitting = on;
    look(on);
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (submitting) return;
    showMessage(els.error, '');
    showMessage(els.withdrawDone, '');
    els.withdrawAmount.removeAttribute('aria-invalid');
    const gen = state.generation;
    const checkAgainst = limits.get() || await limits.load();
    if (submitting || gen !== state.generation) return;
    const parsed = parseRupees(els.withdrawAmount.value, checkAgainst, { verb: 'withdraw' });
    if (parsed.error) {
      refuseField(els.error, els.withdrawAmount, parsed.error);
      return;
    }

    setSubmitting(true);
    let res;
    try {
      res = await api('POST', '/api/withdrawals', {
        body: { amount: parsed.paise },
        headers: { 'Idempotency-Key': keys.keyFor(parsed.paise) },
      });
    } catch (err) {
      if (gen !== state.generation) return;
      setSubmitting(false);
      if (err instanceof Unauthorized) {
        onUnauthorized();
        return;
      }
      if (isFinal(err)) keys.forget();
      showMessage(els.error, errorText(err));
      if (err instanceof ApiError) refresh(); // a 502 leaves a row behind
      return;
    }

    if (gen !== state.generation) return;
    keys.forget(); // done: the next Withdraw is a new withdrawal
    setSubmitting(false);
    els.withdrawAmount.value = '';
    const amount = res && Number.isSafeInteger(res.amount) ? res.amount : parsed.paise;
    const currency = res && typeof res.currency === 'string' ? res.currency : 'INR';
    showMessage(els.withdrawDone,
      `Withdrawing ${formatMoney(amount, currency)} to your bank. It shows as pending until the bank pays it out.`);
    refresh();
  }

  /** Empty the form (on sign-out). */
  function reset() {
    keys.forget();
    showMessage(els.withdrawDone, '');
    els.withdrawAmount.value = '';
    els.withdrawAmount.removeAttribute('aria-invalid');
    setSubmitting(false);
  }

  els.withdrawForm.addEventListener('submit', onSubmit);
  els.withdrawAmount.addEventListener('input', () => {
    if (!els.error.hidden) showMessage(els.error, '');
    els.withdrawAmount.removeAttribute('aria-invalid');
  });

  return { loadLimits: limits.load, setSubmitting, reset };
}
