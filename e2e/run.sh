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
