// The page's elements, found once by id. The page runs under a strict Content-Security-Policy
// (no inline scripts or styles), so everything works through the DOM API, classes and `hidden`.

const byId = (id) => document.getElementById(id);

export function findElements() {
  return {
    loading: byId('view-loading'),
    signedOut: byId('view-signed-out'),
    dashboard: byId('view-dashboard'),
    login: byId('login-google'),
    loginError: byId('login-error'),
    userName: byId('user-name'),
    picture: byId('user-picture'),
    initials: byId('user-initials'),
    logout: byId('logout'),
    balance: byId('balance'),
    depositForm: byId('deposit-form'),
    depositAmount: byId('deposit-amount'),
    depositSubmit: byId('deposit-submit'),
    depositHint: byId('deposit-hint'),
    depositError: byId('deposit-error'),
    transferForm: byId('transfer-form'),
    transferTo: byId('transfer-to'),
    transferAmount: byId('transfer-amount'),
    transferSubmit: byId('transfer-submit'),
    transferHint: byId('transfer-hint'),
    transferDone: byId('transfer-done'),
    withdrawForm: byId('withdraw-form'),
    withdrawAmount: byId('withdraw-amount'),
    withdrawSubmit: byId('withdraw-submit'),
    withdrawHint: byId('withdraw-hint'),
    withdrawDone: byId('withdraw-done'),
    error: byId('error'), // a refused money-out action's message
    txList: byId('transactions'),
    txEmpty: byId('tx-empty'),
    txError: byId('tx-error'),
  };
}

/**
 * A form's "submitting" look, as a function of on/off: its button disabled and relabelled, its
 * fields read-only, the form marked busy.
 */
export function submittingLook(form, button, fields, busyLabel, idleLabel) {
  return (on) => {
    button.disabled = on;
    for (const field of fields) field.readOnly = on;
    button.textContent = on ? busyLabel : idleLabel;
    form.setAttribute('aria-busy', on ? 'true' : 'false');
  };
}

/** Refuse what a field holds: `text` in the message element `messageEl`, the field marked. */
export function refuseField(messageEl, field, text) {
  showMessage(messageEl, text);
  field.setAttribute('aria-invalid', 'true');
  field.focus();
}

/** Show `text` in a message element, or hide it when there is none. */
export function showMessage(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}
