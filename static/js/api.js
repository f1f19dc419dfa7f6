// Talking to the app's JSON API. Every error answer is {"error": {"code", "message"}}; the
// message is written for a person, so the page shows it as it comes.

/** The answer was 401: nobody is signed in (any more). */
export class Unauthorized extends Error {
  constructor() {
    super('Not signed in.');
    this.name = 'Unauthorized';
  }
}

/** The server answered with an error status. `code` is its snake_case error code. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

/**
 * One request: resolves to the parsed JSON body (null for 204 or a body that is not JSON),
 * rejects with Unauthorized, ApiError, or fetch's own TypeError when there was no answer.
 */
export async function api(method, path, { body, headers = {}, signal } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: { Accept: 'application/json', ...headers },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) throw new Unauthorized();
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code || 'http_' + res.status,
      err.message || `Something went wrong (HTTP ${res.status}). Please try again.`);
  }
  return data;
}

/** What to tell the person about a failed request. */
export function errorText(err) {
  if (err instanceof ApiError) return err.message;
  return 'Could not reach the server. Check your connection and try again.';
}
