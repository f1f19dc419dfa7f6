// Idempotency-Key values for POST /api/deposit and POST /api/transfers: one key per deposit or
// transfer the person means to make, so that retrying it (after no answer, or a 5xx) can never
// make two.

/** A fresh random key (a UUID). */
export function newIdempotencyKey() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    return window.crypto.randomUUID();
  }
  // Fallback for non-secure contexts (randomUUID needs https or localhost).
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Remembers the request being attempted and its key. `keyFor(what)` gives the same key for the
 * same `what` (a number or string naming the request: a deposit's amount in paise, a transfer's
 * recipient and amount) until `forget()` (called once the server has given its final answer);
 * a different `what` is a different request and gets a new key.
 */
export function keyPerIntent() {
  let intent = null; // { what, key }
  return {
    keyFor(what) {
      if (!intent || intent.what !== what) intent = { what, key: newIdempotencyKey() };
      return intent.key;
    },
    forget() {
      intent = null;
    },
  };
}
