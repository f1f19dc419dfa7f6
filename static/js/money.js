// Money on this page: the one place amounts are formatted and rupee input is parsed.
// Amounts are integers in paise (100 = ₹1.00) everywhere; no floating point touches them.

const AMOUNT_RE = /^\d+(\.\d{1,2})?$/;

// No deposit limit comes near this many rupee digits, and below it paise stay a safe integer.
const MAX_RUPEE_DIGITS = 13;

/** Indian digit grouping of a string of digits: "1234567" -> "12,34,567". */
export function groupIndian(digits) {
  if (digits.length <= 3) return digits;
  const last3 = digits.slice(-3);
  let rest = digits.slice(0, -3);
  const parts = [];
  while (rest.length > 2) {
    parts.unshift(rest.slice(-2));
    rest = rest.slice(0, -2);
  }
  if (rest.length) parts.unshift(rest);
  return parts.join(',') + ',' + last3;
}

/**
 * Integer paise -> "₹1,234.56" ("−₹5.00" when negative, "—" if not a safe integer).
 * `wholeRupees: true` drops ".00" from a round amount: "₹1,00,000".
 */
export function formatMoney(paise, currency, { wholeRupees = false } = {}) {
  const n = Number(paise);
  if (!Number.isSafeInteger(n)) return '—';
  const abs = Math.abs(n);
  const rupees = groupIndian(String(Math.trunc(abs / 100)));
  const rest = abs % 100;
  const text = wholeRupees && rest === 0 ? rupees : rupees + '.' + String(rest).padStart(2, '0');
  const symbol = !currency || currency === 'INR' ? '₹' : currency + ' ';
  return (n < 0 ? '−' : '') + symbol + text;
}

/**
 * Rupees typed by a person ("100", "100.5", "1,00,000" is refused) -> { paise } or { error },
 * where error is a message for that person.
 *
 * `limits` is `{ min, max, currency }` in paise, from the server's settings; `null` when they
 * could not be loaded, and then only the shape and "more than ₹0" are checked here and the
 * server decides the rest. `verb` is what the
 * person is doing with the amount, for the messages: "add" (a deposit) or "send" (a transfer).
 */
export function parseRupees(raw, limits, { verb = 'add' } = {}) {
  const currency = limits ? limits.currency : 'INR';
  const zero = formatMoney(0, currency, { wholeRupees: true });
  const s = String(raw ?? '').trim();
  if (s === '') return { error: `Enter an amount to ${verb}.` };
  if (s.startsWith('-')) return { error: `The amount must be more than ${zero}.` };
  if (!AMOUNT_RE.test(s)) return { error: 'Enter an amount in rupees, like 100 or 100.50.' };

  const [wholeText, fracText = ''] = s.split('.');
  const whole = wholeText.replace(/^0+(?=\d)/, '');
  if (whole.length > MAX_RUPEE_DIGITS) {
    return { error: limits ? tooMuch(limits, verb) : 'That amount is too large.' };
  }
  const paise = Number(whole) * 100 + Number(fracText.padEnd(2, '0'));

  if (paise <= 0) return { error: `The amount must be more than ${zero}.` };
  if (limits && paise < limits.min) {
    return { error: `The least you can ${verb} at once is ${formatMoney(limits.min, currency)}.` };
  }
  if (limits && paise > limits.max) return { error: tooMuch(limits, verb) };
  return { paise };
}

function tooMuch(limits, verb) {
  return `The most you can ${verb} at once is ${formatMoney(limits.max, limits.currency)}.`;
}
