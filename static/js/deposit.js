// The "Add money" form: checks the amount against the server's limits, then asks the server
// for a deposit and sends the browser to the bank to approve it.
import { api, ApiError, errorText, Unauthorized } from './api.js';
import { showMessage } from './dom.js';
import { keyPerIntent } from './idempotency.js';
import { formatMoney, parseRupees } from './money.js';
import { fetchDepositLimits } from './settings.js';
import { state } from './state.js';

const HINT_END = 'You will approve the payment at your bank.';

/**
 * Whether an error is the server's final word on this deposit, so that asking again with the
 * same Idempotency-Key could only repeat it. Anything else (no answer, a 5xx, 409 "still being
 * processed", 429, ...) may be retried, and a retry of the same amount keeps the key.
 * `bank_unavailable` (502) is final: the server has marked that deposit failed and gives the
 * same 502 for its key again, so the next Add is a new deposit with a new key.
 */
function isFinal(err) {
  return err instanceof ApiError &&
    (err.code === 'bank_unavailable' || err.code === 'idempotency_key_reused');
}

/**
 * `refresh` reloads the wallet (a failed deposit leaves a row behind); `onUnauthorized` is
 * called when the session turns out to be gone.
 */
export function createDepositForm(els, { refresh, onUnauthorized }) {
  const keys = keyPerIntent();
  let submitting = false;
  let limits = null; // { min, max, currency } once /api/settings has answered
  let loading = null; // the request for them while it runs

  function showHint() {
    if (!limits) {
      els.depositHint.textContent = `In rupees. ${HINT_END}`;
      return;
    }
    const money = (paise) => formatMoney(paise, limits.currency, { wholeRupees: true });
    const range = limits.min > 1 ? `from ${money(limits.min)} to ${money(limits.max)}` : `up to ${money(limits.max)}`;
    els.depositHint.textContent = `In rupees, ${range}. ${HINT_END}`;
  }

  /** The limits, fetched on first use and again after a failed fetch; null if unavailable. */
  function loadLimits() {
    if (limits) return Promise.resolve(limits);
    if (!loading) {
      loading = fetchDepositLimits().then((found) => {
        loading = null;
        limits = found;
        showHint();
        return found;
      });
    }
    return loading;
  }

  function setSubmitting(on) {
    submitting = on;
    els.depositSubmit.disabled = on;
    els.depositAmount.readOnly = on;
    els.depositSubmit.textContent = on ? 'Adding…' : 'Add';
    els.depositForm.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (submitting) return;
    showMessage(els.depositError, '');
    const gen = state.generation;
    const checkAgainst = await loadLimits(); // settled long before, unless the first fetch failed
    if (submitting || gen !== state.generation) return;

    const parsed = parseRupees(els.depositAmount.value, checkAgainst);
    if (parsed.error) {
      showMessage(els.depositError, parsed.error);
      els.depositAmount.setAttribute('aria-invalid', 'true');
      els.depositAmount.focus();
      return;
    }
    els.depositAmount.removeAttribute('aria-invalid');
    setSubmitting(true);

    let res;
    try {
      res = await api('POST', '/api/deposit', {
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
      showMessage(els.depositError, errorText(err));
      refresh(); // e.g. a 502 leaves a failed row behind
      return;
    }

    if (gen !== state.generation) return;
    keys.forget(); // the server has answered this deposit: the next Add is a new one
    if (res && typeof res.url === 'string' && /^https?:\/\//i.test(res.url)) {
      els.depositSubmit.textContent = 'Redirecting to your bank…';
      window.location.assign(res.url);
      return; // keep the form disabled while the browser leaves
    }
    setSubmitting(false);
    showMessage(els.depositError, 'The server answered without a payment link. Please try again.');
    refresh();
  }

  /** Empty the form (on sign-out). */
  function reset() {
    keys.forget();
    showMessage(els.depositError, '');
    els.depositAmount.value = '';
    els.depositAmount.removeAttribute('aria-invalid');
    setSubmitting(false);
  }

  els.depositForm.addEventListener('submit', onSubmit);
  els.depositAmount.addEventListener('input', () => {
    if (!els.depositError.hidden) showMessage(els.depositError, '');
    els.depositAmount.removeAttribute('aria-invalid');
  });

  return {
    loadLimits,
    limits: () => limits,
    setSubmitting,
    reset,
  };
}
