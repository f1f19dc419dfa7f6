// The server's public settings (GET /api/settings): the limits the deposit, transfer and withdraw forms
// check before sending anything. The server checks again; these only spare a round trip and
// say the limit.
import { api } from './api.js';

const TIMEOUT_MS = 5000;

let inFlight = null; // one request serves every form that asks while it runs

function fetchSettings() {
  if (!inFlight) {
    inFlight = api('GET', '/api/settings', { signal: AbortSignal.timeout(TIMEOUT_MS) })
      .finally(() => { inFlight = null; });
  }
  return inFlight;
}

/** The deposit limits `{ min, max, currency }` in paise, or null if they cannot be had. */
export async function fetchDepositLimits() {
  try {
    return depositLimits(await fetchSettings());
  } catch {
    return null;
  }
}

/** The transfer limits `{ min, max, currency }` in paise, or null if they cannot be had. */
export async function fetchTransferLimits() {
  try {
    return transferLimits(await fetchSettings());
  } catch {
    return null;
  }
}

/** The withdrawal limits `{ min, max, currency }` in paise, or null if they cannot be had. */
export async function fetchWithdrawalLimits() {
  try {
    return limitsOf(await fetchSettings(), 'withdrawal');
  } catch {
    return null;
  }
}

/**
 * `{"currency": "INR", "deposit": {"min_amount": 1, "max_amount": 10000000}}` ->
 * `{ min: 1, max: 10000000, currency: 'INR' }`; null for anything that does not look like that.
 */
export function depositLimits(settings) {
  return limitsOf(settings, 'deposit');
}

/** The same for `"transfer": {"min_amount", "max_amount"}`. */
export function transferLimits(settings) {
  return limitsOf(settings, 'transfer');
}

function limitsOf(settings, section) {
  const limits = settings && settings[section];
  if (!limits || !Number.isSafeInteger(limits.max_amount) || limits.max_amount < 1) return null;
  const min = Number.isSafeInteger(limits.min_amount) && limits.min_amount >= 1 ? limits.min_amount : 1;
  if (min > limits.max_amount) return null;
  const currency = typeof settings.currency === 'string' && settings.currency ? settings.currency : 'INR';
  return { min, max: limits.max_amount, currency };
}
