// The balance and the transaction list: fetched together, and polled while a deposit is
// still waiting for the bank, so its row turns final without a reload.
import { api, errorText, Unauthorized } from './api.js';
import { showMessage } from './dom.js';
import { formatMoney } from './money.js';
import { state } from './state.js';

const POLL_MS = 1500;

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

function transactionRow(tx) {
  const status = Object.hasOwn(STATUS_LABELS, tx.status) ? tx.status : 'processing';

  const li = element('li', 'tx tx-' + status);
  li.setAttribute('data-testid', 'transaction');
  li.setAttribute('data-status', String(tx.status));
  li.setAttribute('data-id', String(tx.id));

  const main = element('div', 'tx-main');
  const time = element('time', 'tx-time muted small', formatTime(tx.created_at));
  time.dateTime = String(tx.created_at || '');
  main.append(element('span', 'tx-title', 'Deposit'), time);

  const side = element('div', 'tx-side');
  const amount = element('span', 'tx-amount',
    (status === 'failure' ? '' : '+') + formatMoney(tx.amount, tx.currency));
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

  function render(balance, page) {
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
    els.balance.textContent = '—';
    els.txList.textContent = '';
    els.txEmpty.hidden = true;
    showMessage(els.txError, '');
  }

  return { refresh, clear };
}
