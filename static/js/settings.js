// The server's public settings (GET /api/settings): the limits the deposit form checks before
// sending anything. The server checks again; these only spare a round trip and say the limit.
import { api } from './api.js';

const TIMEOUT_MS = 5000;

/** The deposit limits `{ min, max, currency }` in paise, or null if they cannot be had. */
export async function fetchDepositLimits() {
  try {
    const settings = await api('GET', '/api/settings', { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return depositLimits(settings);
  } catch {
    return null;
  }
}

/**
 * `{"currency": "INR", "deposit": {"min_amount": 1, "max_amount": 10000000}}` ->
 * `{ min: 1, max: 10000000, currency: 'INR' }`; null for anything that does not look like that.
 */
export function depositLimits(settings) {
  const deposit = settings && settings.deposit;
  if (!deposit || !Number.isSafeInteger(deposit.max_amount) || deposit.max_amount < 1) return null;
  const min = Number.isSafeInteger(deposit.min_amount) && deposit.min_amount >= 1 ? deposit.min_amount : 1;
  if (min > deposit.max_amount) return null;
  const currency = typeof settings.currency === 'string' && settings.currency ? settings.currency : 'INR';
  return { min, max: deposit.max_amount, currency };
}
