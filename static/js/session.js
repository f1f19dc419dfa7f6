// Signing in and out, and which of the three views shows: loading, signed out, dashboard.
import { api, errorText, Unauthorized } from './api.js';
import { showMessage } from './dom.js';
import { state } from './state.js';

const LOGIN_ERRORS = {
  access_denied: 'Sign-in was cancelled.',
};

function initials(name) {
  const words = String(name || '').trim().split(/\s+/).filter(Boolean);
  const first = words[0] ? words[0].charAt(0) : '';
  const last = words.length > 1 ? words[words.length - 1].charAt(0) : '';
  return (first + last).toUpperCase() || '?';
}

/** `forms` are the dashboard's forms (each with `reset()`), emptied on sign-out. */
export function createSession(els, { wallet, forms }) {
  function showView(name) {
    els.loading.hidden = name !== 'loading';
    els.signedOut.hidden = name !== 'signed-out';
    els.dashboard.hidden = name !== 'dashboard';
  }

  /** Back to the sign-in card, dropping everything about the previous user. */
  function showSignedOut() {
    state.generation++;
    state.user = null;
    wallet.clear();
    for (const form of forms) form.reset();
    els.logout.disabled = false;
    els.login.disabled = false;
    showView('signed-out');
  }

  function renderUser(user) {
    const name = user.name || user.email || 'there';
    els.userName.textContent = name;
    els.userName.title = user.email || '';
    els.initials.textContent = initials(name);
    els.initials.hidden = false;
    els.picture.hidden = true;
    els.picture.removeAttribute('src');
    if (user.picture && /^(https:|data:|\/)/i.test(user.picture)) {
      els.picture.src = user.picture;
    }
  }

  /** Find out who is signed in and show their dashboard, or the sign-in card. */
  async function load() {
    const gen = state.generation;
    let user;
    try {
      user = await api('GET', '/api/user/me');
    } catch (err) {
      if (gen !== state.generation) return;
      showSignedOut();
      // Server trouble: stay on the signed-out card but say what happened.
      if (!(err instanceof Unauthorized)) showMessage(els.loginError, errorText(err));
      return;
    }
    if (gen !== state.generation) return;
    state.user = user || {};
    renderUser(state.user);
    showView('dashboard');
    await wallet.refresh();
  }

  async function onLogout() {
    els.logout.disabled = true;
    try {
      await api('POST', '/api/auth/logout');
      showMessage(els.loginError, '');
      showSignedOut();
    } catch (err) {
      if (err instanceof Unauthorized) {
        showSignedOut();
        return;
      }
      els.logout.disabled = false;
      showMessage(els.txError, 'Could not sign out: ' + errorText(err));
    }
  }

  function onLogin() {
    els.login.disabled = true;
    window.location.assign('/api/auth/google');
  }

  /** Show the `?error=` a failed sign-in came back with, then take it out of the URL. */
  function readLoginError() {
    let params;
    try {
      params = new URLSearchParams(window.location.search);
    } catch {
      return;
    }
    if (!params.has('error')) return;
    const code = params.get('error') || '';
    // Only echo short machine codes: a crafted link must not put arbitrary text here.
    const text = LOGIN_ERRORS[code] || (/^[A-Za-z0-9_.-]{1,64}$/.test(code)
      ? `Sign-in failed (${code}). Please try again.`
      : 'Sign-in failed. Please try again.');
    showMessage(els.loginError, text);
    try {
      window.history.replaceState(null, '', window.location.pathname + window.location.hash);
    } catch {
      // ignore
    }
  }

  els.picture.addEventListener('load', () => {
    els.picture.hidden = false;
    els.initials.hidden = true;
  });
  els.picture.addEventListener('error', () => {
    els.picture.hidden = true;
    els.initials.hidden = false;
  });
  els.login.addEventListener('click', onLogin);
  els.logout.addEventListener('click', onLogout);

  return { showView, showSignedOut, load, readLoginError };
}
