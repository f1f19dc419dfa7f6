// The balance and the transaction list: fetched together, and polled while a deposit is
// still waiting for the bank, so its row turns final without a reload. While the page is
// visible the balance alone is also watched (it is cheap), and when it changes (money received
// from another user, say) the list is fetched again.
import { api, errorText, Unauthorized } from './api.js';
import { showMessage } from './dom.js';
import { formatMoney } from './money.js';
import { state } from './state.js';

const POLL_MS = 1500;
const BALANCE_WATCH_MS = 2000;

const STATUS_LABELS = {
  processing: 'Pending',
  success: 'Successful',
  failure: 'Failed',
};

let timeFormat = null;
try {
  timeFormat = new Intl.DateTimeFormat(undefined, {
    day: 'numeric', month: 'short', year: 'numeric',
    hour: 'numeric', minute: '2-digit',
  });
} catch {
  // very old browser: fall back to toLocaleString
}

function formatTime(iso) {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return String(iso || '');
  return timeFormat ? timeFormat.format(d) : d.toLocaleString();
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

/** "Name (email)", or whichever of the two the counterparty has. */
function personText(person) {
  const name = person && typeof person.name === 'string' ? person.name.trim() : '';
  const email = person && typeof person.email === 'string' ? person.email.trim() : '';
  if (name && email && name !== email) return `${name} (${email})`;
  return name || email || 'another user';
}

// What each kind of transaction is called, and whether it takes money out (amounts are
// always positive; the kind gives the direction).
const KINDS = {
  deposit: { debit: false, title: () => 'Deposit' },
  transfer_in: { debit: false, title: (tx) => 'Received from ' + personText(tx.counterparty) },
  transfer_out: { debit: true, title: (tx) => 'Sent to ' + personText(tx.counterparty) },
  withdrawal: { debit: true, title: () => 'Withdrawal' },
};

function kindOf(tx) {
  if (tx.kind == null) return { name: 'deposit', ...KINDS.deposit }; // a server from before kinds
  if (Object.hasOwn(KINDS, tx.kind)) return { name: tx.kind, ...KINDS[tx.kind] };
  return { name: String(tx.kind), debit: null, title: () => 'Transaction' };
}

function transactionRow(tx) {
  const status = Object.hasOwn(STATUS_LABELS, tx.status) ? tx.status : 'processing';
  const kind = kindOf(tx);

  const li = element('li', 'tx tx-' + status + (kind.debit ? ' tx-debit' : ''));
  li.setAttribute('data-testid', 'transaction');
  li.setAttribute('data-status', String(tx.status));
  li.setAttribute('data-kind', kind.name);
  li.setAttribute('data-id', String(tx.id));

  const main = element('div', 'tx-main');
  const time = element('time', 'tx-time muted small', formatTime(tx.created_at));
  time.dateTime = String(tx.created_at || '');
  const title = element('span', 'tx-title', kind.title(tx));
  title.setAttribute('data-testid', 'transaction-title');
  main.append(title, time);

  const side = element('div', 'tx-side');
  // A failed transaction moved nothing: no sign. Otherwise "+" in, "−" out.
  let sign = '';
  if (status !== 'failure' && kind.debit !== null) sign = kind.debit ? '−' : '+';
  const amount = element('span', 'tx-amount', sign + formatMoney(tx.amount, tx.currency));
  amount.setAttribute('data-testid', 'transaction-amount');
  const badge = element('span', 'badge badge-' + status, STATUS_LABELS[tx.status] || String(tx.status));
  badge.setAttribute('data-testid', 'transaction-status');
  side.append(amount, badge);

  li.append(main, side);
  return li;
}

/** `onUnauthorized` is called when the session turns out to be gone. */
export function createWallet(els, { onUnauthorized }) {
  let pollTimer = null;
  let refreshing = false;
  let refreshQueued = false;
  let watchTimer = null;
  let shownAmount = null; // the balance last shown, in paise

  function render(balance, page) {
    shownAmount = balance.amount;
    els.balance.textContent = formatMoney(balance.amount, balance.currency);
    const items = page && Array.isArray(page.items) ? page.items : [];
    const frag = document.createDocumentFragment();
    for (const tx of items) frag.appendChild(transactionRow(tx));
    els.txList.textContent = '';
    els.txList.appendChild(frag);
    els.txEmpty.hidden = items.length > 0;
    return items;
  }

  function stopPolling() {
    if (pollTimer !== null) {
      window.clearTimeout(pollTimer);
      pollTimer = null;
    }
  }

  function schedulePoll() {
    stopPolling();
    if (!state.user) return;
    pollTimer = window.setTimeout(() => {
      pollTimer = null;
      refresh();
    }, POLL_MS);
  }

  function stopWatching() {
    if (watchTimer !== null) {
      window.clearTimeout(watchTimer);
      watchTimer = null;
    }
  }

  /**
   * Look at the balance again in a while, if nobody is looking already. Only while someone is
   * signed in and the page is visible: `refresh()` (called when the page shows again) resumes it.
   */
  function watchBalance() {
    if (watchTimer !== null || !state.user || document.visibilityState !== 'visible') return;
    watchTimer = window.setTimeout(checkBalance, BALANCE_WATCH_MS);
  }

  /** One look at the balance; a change fetches the list too. */
  async function checkBalance() {
    watchTimer = null;
    if (!state.user || document.visibilityState !== 'visible') return;
    // A refresh on its way, or the pending-deposit poll, reads the balance anyway.
    if (!refreshing && pollTimer === null) {
      const gen = state.generation;
      try {
        const balance = await api('GET', '/api/balance');
        if (gen !== state.generation) return;
        if (balance && balance.amount !== shownAmount) refresh();
      } catch (err) {
        if (gen !== state.generation) return;
        if (err instanceof Unauthorized) {
          onUnauthorized(); // signs out, which stops the watch
          return;
        }
        // No answer or a 5xx: look again at the next tick.
      }
    }
    watchBalance();
  }

  /** Fetch balance and transactions; keep polling while anything is pending. */
  async function refresh() {
    if (!state.user) return;
    if (refreshing) {
      refreshQueued = true;
      return;
    }
    refreshing = true;
    const gen = state.generation;
    try {
      const [balance, page] = await Promise.all([
        api('GET', '/api/balance'),
        api('GET', '/api/transactions?limit=20'),
      ]);
      if (gen === state.generation) {
        const items = render(balance || {}, page);
        showMessage(els.txError, '');
        if (items.some((tx) => tx.status === 'processing')) schedulePoll();
        else stopPolling();
        watchBalance();
      }
    } catch (err) {
      if (gen === state.generation) {
        if (err instanceof Unauthorized) {
          onUnauthorized();
        } else {
          showMessage(els.txError, 'Could not load your wallet: ' + errorText(err));
          schedulePoll(); // try again shortly
        }
      }
    } finally {
      refreshing = false;
      if (refreshQueued) {
        refreshQueued = false;
        refresh();
      }
    }
  }

  /** Forget what was shown (on sign-out). */
  function clear() {
    stopPolling();
    stopWatching();
    shownAmount = null;
    els.balance.textContent = '—';
    els.txList.textContent = '';
    els.txEmpty.hidden = true;
    showMessage(els.txError, '');
  }

  return { refresh, clear };
}
