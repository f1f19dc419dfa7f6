#!/usr/bin/env bash
# Run the onramp end-to-end browser tests.
#   e2e/run.sh                                  # builds target/release/onramp, then tests it
#   ONRAMP_BIN=/path/to/onramp e2e/run.sh       # tests an existing binary, no build
# Screenshots land in target/e2e-screenshots/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

if [ ! -x /usr/bin/chromium ]; then
  echo "==> installing chromium (apt-get)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update
  $sudo_cmd apt-get install -y --no-install-recommends chromium
fi

echo "==> npm ci (e2e/)"
(cd "$here" && npm ci --no-audit --no-fund)

echo "==> npm run lint (static/js/, e2e/)"
(cd "$here" && npm run lint)

if [ -z "${ONRAMP_BIN:-}" ]; then
  echo "==> cargo build --release --bin onramp"
  (cd "$repo" && cargo build --release --bin onramp)
  export ONRAMP_BIN="$repo/target/release/onramp"
fi

echo "==> npm test (ONRAMP_BIN=$ONRAMP_BIN)"
cd "$here"
npm test

# The same journeys through nginx (deploy/nginx.conf) in front of two processes on PostgreSQL:
# a PostgreSQL of its own for this pass, from Debian's binaries (as the postgres user when run
# as root: PostgreSQL refuses root).
pgbin="${ONRAMP_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
pgdir="$(mktemp -d /tmp/onramp-e2e-pg-XXXXXX)"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$pgdir"; as_pg=(runuser -u postgres --); fi
"${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --no-sync >/dev/null
pgport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$pgdir"' EXIT
echo "==> npm test through nginx in front of two processes on PostgreSQL (port $pgport)"
E2E_PG_PORT="$pgport" E2E_PSQL="$pgbin/psql" npm test
