// Onramp wallet page. Plain JavaScript, no build step; loaded under a strict
// Content-Security-Policy (no inline scripts or styles), so everything here
// works through the DOM API, classes and the `hidden` attribute.
'use strict';

(function () {
  var MAX_PAISE = 10000000; // ₹1,00,000 — mirrors [deposit] max_amount
  var POLL_MS = 1500;
  var AMOUNT_RE = /^\d+(\.\d{1,2})?$/;

  var STATUS_LABELS = {
    processing: 'Pending',
    success: 'Successful',
    failure: 'Failed'
  };

  var LOGIN_ERRORS = {
    access_denied: 'Sign-in was cancelled.'
  };

  function $(id) {
    return document.getElementById(id);
  }

  var els = {};
  var state = {
    user: null,
    pollTimer: null,
    refreshing: false,
    refreshQueued: false,
    submitting: false,
    generation: 0 // bumps on sign-out so late responses are ignored
  };

  // ---------------------------------------------------------------- money

  // Indian digit grouping of a string of digits: 1234567 -> 12,34,567.
  function groupIndian(digits) {
    if (digits.length <= 3) return digits;
    var last3 = digits.slice(-3);
    var rest = digits.slice(0, -3);
    var parts = [];
    while (rest.length > 2) {
      parts.unshift(rest.slice(-2));
      rest = rest.slice(0, -2);
    }
    if (rest.length) parts.unshift(rest);
    return parts.join(',') + ',' + last3;
  }

  // Integer paise -> "₹1,234.56". Integer arithmetic only.
  function formatMoney(paise, currency) {
    var n = Number(paise);
    if (!Number.isSafeInteger(n)) return '—';
    var negative = n < 0;
    var abs = Math.abs(n);
    var rupees = Math.trunc(abs / 100);
    var rest = abs % 100;
    var text = groupIndian(String(rupees)) + '.' + (rest < 10 ? '0' : '') + rest;
    var symbol = !currency || currency === 'INR' ? '₹' : currency + ' ';
    return (negative ? '−' : '') + symbol + text;
  }

  // Rupee string -> {paise} or {error}. Never uses floating point.
  function parseRupees(raw) {
    var s = String(raw == null ? '' : raw).trim();
    if (s === '') return { error: 'Enter an amount to add.' };
    if (/^-/.test(s)) return { error: 'The amount must be more than ₹0.' };
    if (!AMOUNT_RE.test(s)) {
      return { error: 'Enter an amount in rupees, like 100 or 100.50.' };
    }
    var parts = s.split('.');
    var whole = parts[0].replace(/^0+(?=\d)/, '');
    var frac = (parts[1] || '');
    while (frac.length < 2) frac += '0';
    // Anything with more than 9 rupee digits is far past the maximum; this also
    // keeps the arithmetic below well inside the safe-integer range.
    if (whole.length > 9) return { error: tooMuchMessage() };
    var paise = parseInt(whole, 10) * 100 + parseInt(frac, 10);
    if (paise <= 0) return { error: 'The amount must be more than ₹0.' };
    if (paise > MAX_PAISE) return { error: tooMuchMessage() };
    return { paise: paise };
  }

  function tooMuchMessage() {
    return 'The most you can add at once is ' + formatMoney(MAX_PAISE, 'INR') + '.';
  }

  // ---------------------------------------------------------------- time

  var timeFormat = null;
  try {
    timeFormat = new Intl.DateTimeFormat(undefined, {
      day: 'numeric', month: 'short', year: 'numeric',
      hour: 'numeric', minute: '2-digit'
    });
  } catch (e) { /* very old browser: fall back to toLocaleString */ }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return String(iso || '');
    return timeFormat ? timeFormat.format(d) : d.toLocaleString();
  }

  // ---------------------------------------------------------------- http

  function Unauthorized() {
    this.name = 'Unauthorized';
  }

  function ApiError(status, code, message) {
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.message = message;
  }

  function api(method, path, body, headers) {
    var init = {
      method: method,
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' }
    };
    if (headers) {
      Object.keys(headers).forEach(function (k) { init.headers[k] = headers[k]; });
    }
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (res) {
      if (res.status === 401) throw new Unauthorized();
      if (res.status === 204) return null;
      return res.text().then(function (text) {
        var data = null;
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = null; }
        }
        if (!res.ok) {
          var err = data && data.error ? data.error : {};
          throw new ApiError(res.status, err.code || 'http_' + res.status,
            err.message || 'Something went wrong (HTTP ' + res.status + '). Please try again.');
        }
        return data;
      });
    });
  }

  function errorText(err) {
    if (err instanceof ApiError) return err.message;
    return 'Could not reach the server. Check your connection and try again.';
  }

  function newIdempotencyKey() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    // Fallback for non-secure contexts (randomUUID needs https or localhost).
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) {
      return (b < 16 ? '0' : '') + b.toString(16);
    }).join('');
    return hex.slice(0, 8) + '-' + hex.slice(8, 12) + '-' + hex.slice(12, 16) + '-' +
      hex.slice(16, 20) + '-' + hex.slice(20);
  }

  // ---------------------------------------------------------------- views

  function showView(name) {
    els.loading.hidden = name !== 'loading';
    els.signedOut.hidden = name !== 'signed-out';
    els.dashboard.hidden = name !== 'dashboard';
  }

  function showMessage(el, text) {
    el.textContent = text || '';
    el.hidden = !text;
  }

  function showSignedOut() {
    state.generation++;
    state.user = null;
    stopPolling();
    els.balance.textContent = '—';
    els.txList.textContent = '';
    els.txEmpty.hidden = true;
    showMessage(els.depositError, '');
    showMessage(els.txError, '');
    els.depositAmount.value = '';
    setSubmitting(false);
    els.logout.disabled = false;
    els.login.disabled = false;
    showView('signed-out');
  }

  function initials(name) {
    var words = String(name || '').trim().split(/\s+/).filter(Boolean);
    var first = words[0] ? words[0].charAt(0) : '';
    var last = words.length > 1 ? words[words.length - 1].charAt(0) : '';
    return (first + last).toUpperCase() || '?';
  }

  function renderUser(user) {
    var name = user.name || user.email || 'there';
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

  function renderBalance(b) {
    els.balance.textContent = formatMoney(b.amount, b.currency);
  }

  function renderTransactions(items) {
    var list = els.txList;
    var frag = document.createDocumentFragment();
    items.forEach(function (tx) {
      var status = STATUS_LABELS.hasOwnProperty(tx.status) ? tx.status : 'processing';

      var li = document.createElement('li');
      li.className = 'tx tx-' + status;
      li.setAttribute('data-testid', 'transaction');
      li.setAttribute('data-status', String(tx.status));
      li.setAttribute('data-id', String(tx.id));

      var main = document.createElement('div');
      main.className = 'tx-main';
      var title = document.createElement('span');
      title.className = 'tx-title';
      title.textContent = 'Deposit';
      var time = document.createElement('time');
      time.className = 'tx-time muted small';
      time.dateTime = String(tx.created_at || '');
      time.textContent = formatTime(tx.created_at);
      main.appendChild(title);
      main.appendChild(time);

      var side = document.createElement('div');
      side.className = 'tx-side';
      var amount = document.createElement('span');
      amount.className = 'tx-amount';
      amount.setAttribute('data-testid', 'transaction-amount');
      amount.textContent = (status === 'failure' ? '' : '+') + formatMoney(tx.amount, tx.currency);
      var badge = document.createElement('span');
      badge.className = 'badge badge-' + status;
      badge.setAttribute('data-testid', 'transaction-status');
      badge.textContent = STATUS_LABELS[tx.status] || String(tx.status);
      side.appendChild(amount);
      side.appendChild(badge);

      li.appendChild(main);
      li.appendChild(side);
      frag.appendChild(li);
    });
    list.textContent = '';
    list.appendChild(frag);
    els.txEmpty.hidden = items.length > 0;
  }

  function setSubmitting(on) {
    state.submitting = on;
    els.depositSubmit.disabled = on;
    els.depositAmount.readOnly = on;
    els.depositSubmit.textContent = on ? 'Adding…' : 'Add';
    els.depositForm.setAttribute('aria-busy', on ? 'true' : 'false');
  }

  // ---------------------------------------------------------------- data

  // Fetch balance and transactions together; keep polling while anything is pending.
  function refresh() {
    if (!state.user) return Promise.resolve();
    if (state.refreshing) {
      state.refreshQueued = true;
      return Promise.resolve();
    }
    state.refreshing = true;
    var gen = state.generation;
    return Promise.all([
      api('GET', '/api/balance'),
      api('GET', '/api/transactions?limit=20')
    ]).then(function (results) {
      if (gen !== state.generation) return;
      renderBalance(results[0] || {});
      var items = (results[1] && Array.isArray(results[1].items)) ? results[1].items : [];
      renderTransactions(items);
      showMessage(els.txError, '');
      var pending = items.some(function (tx) { return tx.status === 'processing'; });
      if (pending) schedulePoll(); else stopPolling();
    }).catch(function (err) {
      if (gen !== state.generation) return;
      if (err instanceof Unauthorized) { showSignedOut(); return; }
      showMessage(els.txError, 'Could not load your wallet: ' + errorText(err));
      schedulePoll(); // try again shortly
    }).then(function () {
      state.refreshing = false;
      if (state.refreshQueued) {
        state.refreshQueued = false;
        refresh();
      }
    });
  }

  function schedulePoll() {
    stopPolling();
    if (!state.user) return;
    state.pollTimer = window.setTimeout(function () {
      state.pollTimer = null;
      refresh();
    }, POLL_MS);
  }

  function stopPolling() {
    if (state.pollTimer !== null) {
      window.clearTimeout(state.pollTimer);
      state.pollTimer = null;
    }
  }

  function loadSession() {
    var gen = state.generation;
    return api('GET', '/api/user/me').then(function (user) {
      if (gen !== state.generation) return;
      state.user = user || {};
      renderUser(state.user);
      showView('dashboard');
      return refresh();
    }).catch(function (err) {
      if (gen !== state.generation) return;
      if (err instanceof Unauthorized) { showSignedOut(); return; }
      // Server trouble: stay on the signed-out card but say what happened.
      showSignedOut();
      showMessage(els.loginError, errorText(err));
    });
  }

  // ---------------------------------------------------------------- actions

  function onSubmitDeposit(ev) {
    ev.preventDefault();
    if (state.submitting) return;
    showMessage(els.depositError, '');
    var parsed = parseRupees(els.depositAmount.value);
    if (parsed.error) {
      showMessage(els.depositError, parsed.error);
      els.depositAmount.setAttribute('aria-invalid', 'true');
      els.depositAmount.focus();
      return;
    }
    els.depositAmount.removeAttribute('aria-invalid');
    setSubmitting(true);
    var gen = state.generation;
    api('POST', '/api/deposit', { amount: parsed.paise }, {
      'Idempotency-Key': newIdempotencyKey()
    }).then(function (res) {
      if (gen !== state.generation) return;
      if (res && typeof res.url === 'string' && /^https?:\/\//i.test(res.url)) {
        els.depositSubmit.textContent = 'Redirecting to your bank…';
        window.location.assign(res.url);
        return; // keep the form disabled while the browser leaves
      }
      setSubmitting(false);
      showMessage(els.depositError, 'The server answered without a payment link. Please try again.');
      refresh();
    }).catch(function (err) {
      if (gen !== state.generation) return;
      setSubmitting(false);
      if (err instanceof Unauthorized) { showSignedOut(); return; }
      showMessage(els.depositError, errorText(err));
      refresh(); // e.g. a 502 leaves a failed row behind
    });
  }

  function onLogout() {
    els.logout.disabled = true;
    api('POST', '/api/auth/logout').then(function () {
      showMessage(els.loginError, '');
      showSignedOut();
    }).catch(function (err) {
      if (err instanceof Unauthorized) { showSignedOut(); return; }
      els.logout.disabled = false;
      showMessage(els.txError, 'Could not sign out: ' + errorText(err));
    });
  }

  function onLogin() {
    els.login.disabled = true;
    window.location.assign('/api/auth/google');
  }

  function readLoginError() {
    var params;
    try { params = new URLSearchParams(window.location.search); } catch (e) { return; }
    if (!params.has('error')) return;
    var code = params.get('error') || '';
    // Only echo short machine codes: a crafted link must not put arbitrary text here.
    var text = LOGIN_ERRORS[code] || (/^[A-Za-z0-9_.-]{1,64}$/.test(code)
      ? 'Sign-in failed (' + code + '). Please try again.'
      : 'Sign-in failed. Please try again.');
    showMessage(els.loginError, text);
    try {
      window.history.replaceState(null, '', window.location.pathname + window.location.hash);
    } catch (e) { /* ignore */ }
  }

  // ---------------------------------------------------------------- boot

  function init() {
    els.loading = $('view-loading');
    els.signedOut = $('view-signed-out');
    els.dashboard = $('view-dashboard');
    els.login = $('login-google');
    els.loginError = $('login-error');
    els.userName = $('user-name');
    els.picture = $('user-picture');
    els.initials = $('user-initials');
    els.logout = $('logout');
    els.balance = $('balance');
    els.depositForm = $('deposit-form');
    els.depositAmount = $('deposit-amount');
    els.depositSubmit = $('deposit-submit');
    els.depositError = $('deposit-error');
    els.txList = $('transactions');
    els.txEmpty = $('tx-empty');
    els.txError = $('tx-error');

    els.picture.addEventListener('load', function () {
      els.picture.hidden = false;
      els.initials.hidden = true;
    });
    els.picture.addEventListener('error', function () {
      els.picture.hidden = true;
      els.initials.hidden = false;
    });

    els.login.addEventListener('click', onLogin);
    els.logout.addEventListener('click', onLogout);
    els.depositForm.addEventListener('submit', onSubmitDeposit);
    els.depositAmount.addEventListener('input', function () {
      if (!els.depositError.hidden) showMessage(els.depositError, '');
      els.depositAmount.removeAttribute('aria-invalid');
    });

    // Catch up when the tab comes back (and on back/forward-cache restores).
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible' && state.user) refresh();
    });
    window.addEventListener('focus', function () {
      if (state.user) refresh();
    });
    window.addEventListener('pageshow', function (ev) {
      if (ev.persisted) {
        setSubmitting(false);
        loadSession();
      }
    });

    readLoginError();
    showView('loading');
    loadSession();
  }

  // Exposed for tests and debugging; harmless.
  window.onramp = { formatMoney: formatMoney, parseRupees: parseRupees };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
