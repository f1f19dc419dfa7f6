// The money forms. "Add money" checks the amount against the server's limits, then asks the
// server for a deposit and sends the browser to the bank to approve it. "Send money" checks the
// email and amount, then asks the server for a transfer to another user; the server decides
// the rest (balance, recipient, limits) and a refusal shows in the page's error element.
import { api, ApiError, errorText, Unauthorized } from './api.js';
import { refuseField, showMessage, submittingLook } from './dom.js';
import { keyPerIntent } from './idempotency.js';
import { formatMoney, parseRupees } from './money.js';
import { fetchDepositLimits, fetchTransferLimits } from './settings.js';
import { state } from './state.js';

const HINT_END = 'You will approve the payment at your bank.';

/**
 * A form's amount limits from `GET /api/settings` (`fetchLimits`), shown in `hintEl` as
 * "In rupees, up to ₹… `hintEnd`". `load()` fetches them on first use and again after a failed
 * fetch (null if unavailable); `get()` answers them once known.
 */
export function amountLimits(hintEl, fetchLimits, hintEnd) {
  let limits = null; // { min, max, currency } once /api/settings has answered
  let loading = null; // the request for them while it runs

  function show() {
    if (!limits) {
      hintEl.textContent = `In rupees. ${hintEnd}`;
      return;
    }
    const money = (paise) => formatMoney(paise, limits.currency, { wholeRupees: true });
    const range = limits.min > 1 ? `from ${money(limits.min)} to ${money(limits.max)}` : `up to ${money(limits.max)}`;
    hintEl.textContent = `In rupees, ${range}. ${hintEnd}`;
  }

  function load() {
    if (limits) return Promise.resolve(limits);
    if (!loading) {
      loading = fetchLimits().then((found) => {
        loading = null;
        limits = found;
        show();
        return found;
      });
    }
    return loading;
  }

  return { load, get: () => limits };
}

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
  const limits = amountLimits(els.depositHint, fetchDepositLimits, HINT_END);

  const look = submittingLook(els.depositForm, els.depositSubmit, [els.depositAmount],
    'Adding…', 'Add');
  function setSubmitting(on) {
    submitting = on;
    look(on);
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (submitting) return;
    showMessage(els.depositError, '');
    const gen = state.generation;
    const checkAgainst = await limits.load(); // settled long before, unless the first fetch failed
    if (submitting || gen !== state.generation) return;

    const parsed = parseRupees(els.depositAmount.value, checkAgainst);
    if (parsed.error) {
      refuseField(els.depositError, els.depositAmount, parsed.error);
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
    loadLimits: limits.load,
    limits: limits.get,
    setSubmitting,
    reset,
  };
}

// ------------------------------------------------------------------ Send money

const TRANSFER_HINT_END = 'From your balance, to another Onramp user, by their email.';

// Just enough to catch a slip of the keyboard; the server decides who the recipient is.
const EMAIL_RE = /^[^\s@]+@[^\s@]+$/;

/**
 * Whether a refused transfer is the server's final word on it: nothing moved, and asking again
 * with the same Idempotency-Key could only repeat the answer, so the next Send gets a new key
 * (money received since, after a 409 insufficient_funds, must be able to make it go through).
 * No answer, a 5xx, 429, and 409 request_in_progress may be retried with the same key.
 */
function transferIsFinal(err) {
  return err instanceof ApiError && err.status >= 400 && err.status < 500 &&
    err.status !== 429 && err.code !== 'request_in_progress';
}

/** "Name (email)", or whichever of the two there is. */
function personText(person, fallbackEmail) {
  const name = person && typeof person.name === 'string' ? person.name.trim() : '';
  const email = person && typeof person.email === 'string' ? person.email.trim() : fallbackEmail;
  if (name && email && name !== email) return `${name} (${email})`;
  return name || email;
}

/**
 * The "Send money" form. `refresh` reloads the wallet after a transfer (and after a refusal,
 * whose balance may be newer than the one shown); `onUnauthorized` is called when the session
 * turns out to be gone.
 */
export function createTransferForm(els, { refresh, onUnauthorized }) {
  const keys = keyPerIntent();
  let submitting = false;
  const limits = amountLimits(els.transferHint, fetchTransferLimits, TRANSFER_HINT_END);

  const look = submittingLook(els.transferForm, els.transferSubmit,
    [els.transferTo, els.transferAmount], 'Sending…', 'Send');
  function setSubmitting(on) {
    submitting = on;
    look(on);
  }

  const refuse = (field, text) => refuseField(els.error, field, text);

  /** `{ to, paise }` from the form, or null after showing what is wrong. */
  function readForm(checkAgainst) {
    const to = els.transferTo.value.trim();
    if (to === '') {
      refuse(els.transferTo, 'Enter the email of the person to send money to.');
      return null;
    }
    if (!EMAIL_RE.test(to) || to.length > 320) {
      refuse(els.transferTo, 'Enter an email address, like name@example.com.');
      return null;
    }
    const parsed = parseRupees(els.transferAmount.value, checkAgainst, { verb: 'send' });
    if (parsed.error) {
      refuse(els.transferAmount, parsed.error);
      return null;
    }
    return { to, paise: parsed.paise };
  }

  async function onSubmit(ev) {
    ev.preventDefault();
    if (submitting) return;
    showMessage(els.error, '');
    showMessage(els.transferDone, '');
    els.transferTo.removeAttribute('aria-invalid');
    els.transferAmount.removeAttribute('aria-invalid');
    const gen = state.generation;
    // Settled long before, unless the first fetch failed (then the wait is on a retry).
    const checkAgainst = limits.get() || await limits.load();
    if (submitting || gen !== state.generation) return;
    const intent = readForm(checkAgainst);
    if (!intent) return;

    setSubmitting(true);
    let res;
    try {
      res = await api('POST', '/api/transfers', {
        body: { to: intent.to, amount: intent.paise },
        // The same recipient and amount again (after no answer) is the same transfer.
        headers: { 'Idempotency-Key': keys.keyFor(`${intent.to.toLowerCase()} ${intent.paise}`) },
      });
    } catch (err) {
      if (gen !== state.generation) return;
      setSubmitting(false);
      if (err instanceof Unauthorized) {
        onUnauthorized();
        return;
      }
      if (transferIsFinal(err)) keys.forget();
      showMessage(els.error, errorText(err));
      if (err instanceof ApiError) refresh();
      return;
    }

    if (gen !== state.generation) return;
    keys.forget(); // done: the next Send is a new transfer
    setSubmitting(false);
    els.transferTo.value = '';
    els.transferAmount.value = '';
    const amount = res && Number.isSafeInteger(res.amount) ? res.amount : intent.paise;
    const currency = res && typeof res.currency === 'string' ? res.currency : 'INR';
    showMessage(els.transferDone,
      `Sent ${formatMoney(amount, currency)} to ${personText(res && res.to, intent.to)}.`);
    refresh();
  }

  /** Empty the form (on sign-out). */
  function reset() {
    keys.forget();
    showMessage(els.error, '');
    showMessage(els.transferDone, '');
    els.transferTo.value = '';
    els.transferAmount.value = '';
    els.transferTo.removeAttribute('aria-invalid');
    els.transferAmount.removeAttribute('aria-invalid');
    setSubmitting(false);
  }

  els.transferForm.addEventListener('submit', onSubmit);
  for (const field of [els.transferTo, els.transferAmount]) {
    field.addEventListener('input', () => {
      if (!els.error.hidden) showMessage(els.error, '');
      field.removeAttribute('aria-invalid');
    });
  }

  return { loadLimits: limits.load, setSubmitting, reset };
}
