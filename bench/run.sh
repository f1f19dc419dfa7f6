#!/usr/bin/env bash
# Benchmarks onramp with its own load tool, on this machine.
#
#   bench/run.sh [sqlite|postgres] [scenario…]
#
# Builds the release binary, starts a throwaway PostgreSQL cluster when asked, and for each
# scenario (default: hot-wallet spread deposit-create balance-reads) starts target/release/onramp
# on a fresh database with its in-process bank simulator and development identity provider, runs
# `onramp-load --scenario <name>` against it, and stops the app. Everything it started is
# stopped on exit. Reports (table and JSON) go to target/bench/<db>-<scenario>.{txt,json}.
#
# The transfer scenarios are transfers-random, transfers-hot-sender and transfers-crossing
# (`transfers` names all three). `withdrawals` makes many concurrent withdrawals (the bank's
# payouts, some failing by the 13 rule, some over the balance) and sets their rate beside the
# same run's deposit creations; `mixed` runs deposit webhooks, transfers and withdrawals at once
# on the same wallets. For these two the app's bank simulator sends every payout webhook twice
# and out of order (ONRAMP__DEV__WEBHOOK_DUPLICATES=1, ONRAMP__DEV__WEBHOOK_REORDER=true, unless
# set otherwise), and the load tool waits for every payout to settle before its check (failing
# once 60 s pass without any settling).
# After each of these scenarios, `onramp audit` checks the books of the same database (with the
# app stopped); its output goes to target/bench/<db>-<scenario>.audit.txt, and the run fails
# when it exits non-zero, as when the load tool's own check fails.
#
#   LOAD_ARGS="--users 200 --healthz-secs 1" TRANSFER_ARGS="--transfers 2000" \
#       bench/run.sh sqlite transfers-crossing
#   LOAD_ARGS="--users 50 --healthz-secs 1" WITHDRAWAL_ARGS="--withdrawals 2000" \
#       TRANSFER_ARGS="--transfers 2000" bench/run.sh sqlite withdrawals mixed
#
# Environment:
#   LOAD_ARGS="--deposits 5000 …"   extra options for `onramp-load` (see `onramp-load --help`)
#   TRANSFER_ARGS="--transfers 2000 --with-deposits …"
#                                   extra options for the transfers-* and mixed scenarios only
#                                   (the load tool refuses --transfers and --with-deposits [N]
#                                   elsewhere, and --over-balance and --read-concurrency where
#                                   there are neither transfers nor withdrawals)
#   WITHDRAWAL_ARGS="--withdrawals 5000 --failing-payouts 0.3 …"
#                                   extra options for the withdrawals and mixed scenarios only
#                                   (the load tool refuses --withdrawals and --failing-payouts
#                                   elsewhere)
#   BENCH_PORT=18080                the app's port (the bank and the provider take the next two)
#   BENCH_OUT=target/bench          where the reports go
#   ONRAMP_BIN=path                 use this onramp binary instead of building target/release/onramp
#   LOAD_BIN=path                   use this load tool instead of building target/release/onramp-load
#   BENCH_IDLE_WAIT=300             before each scenario, wait up to this many seconds for the
#                                   machine to be at least 85% idle (other builds skew the figures)
#   BENCH_PG_ARGS="-c …"            extra PostgreSQL server settings (e.g. statement logging)
#   BENCH_PROCESSES=3               PostgreSQL only: this many app processes serve the database as
#                                   one service (process 0 runs the bank simulator and the identity
#                                   provider; process i listens on BENCH_PORT + 10 i), and the load
#                                   tool sends its requests to each in turn (--app with every URL)
#   BENCH_PRELOAD="--users 1000000" grown books: `onramp-load preload` fills one database with
#                                   these options (see `onramp-load preload --help`) and each
#                                   scenario starts on a copy of it; the scenario's users sign in on
#                                   top. Three scenarios need it: `history` (onramp-load history:
#                                   the deep user's pages, first against deepest; HISTORY_ARGS),
#                                   `sessions` (onramp-load sessions: a million preloaded sessions
#                                   used once, a tenth with their wallets; SESSIONS_ARGS) and
#                                   `preloaded-transfers` (onramp-load preloaded-transfers:
#                                   transfers between preloaded people picked at random, with their
#                                   sessions, then the audit; PRELOADED_TRANSFERS_ARGS).
#   BENCH_PAIRED=1                  with BENCH_PRELOAD: each scenario (but those three)
#                                   runs first on empty books, then on grown ones; reports are
#                                   <db>-<scenario>-empty.* and <db>-<scenario>-grown.*
#                                   The app's start-up time to /readyz, its resident memory after
#                                   each scenario and the audit's time go to
#                                   <out>/<db>-<name>.grown.txt (also without a preload), where the
#                                   name is the scenario's, with -empty or -grown when paired.
#                                   SESSIONS_ARGS must not ask for more sessions than were preloaded
#                                   (a million by default, one per user)
#   BENCH_GROWN_FROM=path           SQLite only, with BENCH_PRELOAD: the grown books are a copy of
#                                   this file, filled before by `onramp-load preload --database
#                                   sqlite://path …` (and left as it was), instead of a new preload
#                                   (about eight minutes for a million users) in each invocation;
#                                   history, sessions and preloaded-transfers also need
#                                   BENCH_TOKEN_SEED, the --token-seed it was filled with, and
#                                   preloaded-transfers picks among BENCH_PRELOAD's --users
#                                   people: say the file's (PRELOADED_TRANSFERS_ARGS="--people N"
#                                   otherwise)
#   ONRAMP__…                       any app setting (e.g. ONRAMP__WRITER__MAX_BATCH=256)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

db=${1:-sqlite}
case "$db" in
sqlite | postgres) shift || true ;;
*)
    echo "usage: bench/run.sh [sqlite|postgres] [scenario…]" >&2
    exit 2
    ;;
esac
scenarios=()
for name in "$@"; do
    case "$name" in
    transfers) scenarios+=(transfers-random transfers-hot-sender transfers-crossing) ;;
    *) scenarios+=("$name") ;;
    esac
done
[ ${#scenarios[@]} -gt 0 ] || scenarios=(hot-wallet spread deposit-create balance-reads)

port=${BENCH_PORT:-18080}
out=${BENCH_OUT:-target/bench}
mkdir -p "$out"
work=$(mktemp -d /tmp/onramp-bench.XXXXXX)
chmod 755 "$work"
app_pids=()
pg_pid=""
pg_bin=""
db_url="" # the database of the app started last

as_postgres() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_app() {
    local pid
    for pid in "${app_pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${app_pids[@]}"; do
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    app_pids=()
}

cleanup() {
    stop_app
    if [ -n "$pg_pid" ]; then
        as_postgres "$pg_bin/pg_ctl" -D "$work/pg" -m fast -w stop >/dev/null 2>&1 ||
            kill -QUIT "$pg_pid" 2>/dev/null || true
    fi
    [ -n "${BENCH_KEEP:-}" ] && cp "$work/postgres.log" "$BENCH_KEEP" 2>/dev/null; rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "${ONRAMP_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
    echo "== building the release binaries"
    cargo build --release -p onramp -p onramp-load --bins
fi
bin=$(realpath "${ONRAMP_BIN:-$root/target/release/onramp}")
load_bin=$(realpath "${LOAD_BIN:-$root/target/release/onramp-load}")

processes=${BENCH_PROCESSES:-1}
if [ "$processes" -gt 1 ] && [ "$db" != postgres ]; then
    echo "BENCH_PROCESSES needs postgres: a SQLite database has one process" >&2
    exit 2
fi
app_urls="http://localhost:$port"
for i in $(seq 1 $((processes - 1))); do app_urls="$app_urls,http://localhost:$((port + 10 * i))"; done

if [ "$db" = postgres ]; then
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
        pg_bin=$(dirname "$(command -v initdb)")
    fi
    pg_port=$((port + 3))
    echo "== starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
    mkdir -p "$work/pg" "$work/pgsock"
    [ "$(id -u)" -ne 0 ] || chown postgres "$work/pg" "$work/pgsock"
    as_postgres "$pg_bin/initdb" -D "$work/pg" -U postgres --auth=trust -E UTF8 >"$work/initdb.log"
    as_postgres "$pg_bin/postgres" -D "$work/pg" -p "$pg_port" -k "$work/pgsock" \
        -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=512MB \
        ${BENCH_PG_ARGS:-} >"$work/postgres.log" 2>&1 &
    pg_pid=$!
    for _ in $(seq 1 100); do
        pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
        sleep 0.1
    done
    pg_isready -q -h 127.0.0.1 -p "$pg_port" || {
        cat "$work/postgres.log" >&2
        exit 1
    }
fi

grown="" # the preloaded database every scenario starts from a copy of
# its sessions' tokens (history and sessions sign in with them)
token_seed=${BENCH_TOKEN_SEED:-$(od -An -tx8 -N16 /dev/urandom | tr -d ' \n')}
grown_copy() { # $1: a scenario whose database becomes a copy of the grown books
    local name=$1
    if [ -z "$grown" ]; then
        if [ "$db" = postgres ]; then
            as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres onramp_grown
            grown="postgres://postgres@127.0.0.1:$pg_port/onramp_grown"
        else
            grown="sqlite://$work/grown.db"
        fi
        if [ "$db" = sqlite ] && [ -n "${BENCH_GROWN_FROM:-}" ]; then
            echo "== $db: the grown books are a copy of $BENCH_GROWN_FROM" | tee "$out/$db-preload.txt"
            cp "$BENCH_GROWN_FROM" "$work/grown.db"
        else
            echo "== $db: onramp-load preload $BENCH_PRELOAD"
            # shellcheck disable=SC2086 # BENCH_PRELOAD is a list of options
            "$load_bin" preload --database "$grown" --token-seed "$token_seed" $BENCH_PRELOAD |
                tee "$out/$db-preload.txt"
            if [ "$db" = postgres ]; then
                echo "   size: $(as_postgres "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres \
                    -d onramp_grown -Atc "SELECT pg_size_pretty(pg_database_size('onramp_grown'))")" |
                    tee -a "$out/$db-preload.txt"
            else
                echo "   size: $(du -h "$work/grown.db" | cut -f1)" | tee -a "$out/$db-preload.txt"
            fi
        fi
    fi
    if [ "$db" = postgres ]; then
        as_postgres "$pg_bin/dropdb" -h 127.0.0.1 -p "$pg_port" -U postgres "onramp_${name//-/_}"
        # A file copy, checkpointed before and after: PostgreSQL 15's default copies every page
        # through the WAL and leaves them to be written while the scenario runs.
        as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres -T onramp_grown \
            -S file_copy "onramp_${name//-/_}"
    else
        cp "$work/grown.db" "$work/$name/onramp.db"
        # Written out before the app starts: its first fsync would wait for the copy's pages.
        sync "$work/$name/onramp.db"
    fi
}

start_app() { # $1: a name for this run's database, $2: grown for a copy of the preloaded books
    local name=$1 books=${2:-empty}
    rm -rf "$work/$name" && mkdir -p "$work/$name"
    local url
    if [ "$db" = postgres ]; then
        as_postgres "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "onramp_${name//-/_}"
        url="postgres://postgres@127.0.0.1:$pg_port/onramp_${name//-/_}"
    else
        url="sqlite://$work/$name/onramp.db"
    fi
    db_url=$url
    : >"$out/$db-$name.grown.txt"
    if [ "$books" = grown ]; then
        grown_copy "$name"
    fi
    local faults=()
    case "$name" in
    withdrawals* | mixed*) # the simulator's payout webhooks twice each, and out of order
        faults=(ONRAMP__DEV__WEBHOOK_DUPLICATES="${ONRAMP__DEV__WEBHOOK_DUPLICATES:-1}"
            ONRAMP__DEV__WEBHOOK_REORDER="${ONRAMP__DEV__WEBHOOK_REORDER:-true}")
        ;;
    esac
    env "${faults[@]}" ONRAMP__LOG__LEVEL="${ONRAMP__LOG__LEVEL:-warn}" \
        ONRAMP__SERVER__LISTEN="127.0.0.1:$port" \
        ONRAMP__SERVER__PUBLIC_URL="http://localhost:$port" \
        ONRAMP__DEV__BANK_LISTEN="127.0.0.1:$((port + 1))" \
        ONRAMP__DEV__IDP_LISTEN="127.0.0.1:$((port + 2))" \
        ONRAMP__DEV__BANK_DATABASE_URL="sqlite://$work/$name/bank.db" \
        ONRAMP__DATABASE__URL="$url" \
        ONRAMP__RECONCILE__ENABLED=${ONRAMP__RECONCILE__ENABLED:-false} \
        "$bin" serve >"$work/$name/app.log" 2>&1 &
    app_pids=($!)
    local started
    started=$(date +%s.%N)
    wait_up "$port" "$work/$name/app.log"
    local tries=0
    until curl -fs "http://localhost:$port/readyz" >/dev/null 2>&1; do
        tries=$((tries + 1))
        if [ "$tries" -gt 3000 ] || ! kill -0 "${app_pids[0]}" 2>/dev/null; then
            echo "the app was not ready within 30 s:" >&2
            tail -n 20 "$work/$name/app.log" >&2
            exit 1
        fi
        sleep 0.01
    done
    echo "   start-up to /readyz: $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $started }") s" |
        tee -a "$out/$db-$name.grown.txt"
    local i p
    for i in $(seq 1 $((processes - 1))); do
        p=$((port + 10 * i))
        env "${faults[@]}" ONRAMP__LOG__LEVEL="${ONRAMP__LOG__LEVEL:-warn}" \
            ONRAMP__SERVER__LISTEN="127.0.0.1:$p" \
            ONRAMP__SERVER__PUBLIC_URL="http://localhost:$port" \
            ONRAMP__DEV__ENABLED=false \
            ONRAMP__BANK__API_URL="http://127.0.0.1:$((port + 1))" \
            ONRAMP__GOOGLE__AUTH_URL="http://127.0.0.1:$((port + 2))/authorize" \
            ONRAMP__GOOGLE__TOKEN_URL="http://127.0.0.1:$((port + 2))/token" \
            ONRAMP__GOOGLE__USERINFO_URL="http://127.0.0.1:$((port + 2))/userinfo" \
            ONRAMP__DATABASE__URL="$url" \
            ONRAMP__RECONCILE__ENABLED=${ONRAMP__RECONCILE__ENABLED:-false} \
            "$bin" serve >"$work/$name/app$i.log" 2>&1 &
        app_pids+=($!)
        wait_up "$p" "$work/$name/app$i.log"
    done
}

wait_up() { # $1: the port of the process started last, $2: its log
    local pid=${app_pids[-1]}
    for _ in $(seq 1 2000); do
        curl -fs "http://localhost:$1/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.01
    done
    echo "the app did not start:" >&2
    cat "$2" >&2
    exit 1
}

audit() { # $1: the scenario whose database `onramp audit` checks; fails when it does
    local name=$1 rc=0 began
    echo "== $db / $name: onramp audit"
    began=$(date +%s.%N)
    ONRAMP__LOG__LEVEL=${ONRAMP__LOG__LEVEL:-warn} \
        ONRAMP__SERVER__LISTEN="127.0.0.1:$port" \
        ONRAMP__SERVER__PUBLIC_URL="http://localhost:$port" \
        ONRAMP__DEV__BANK_DATABASE_URL="sqlite://$work/$name/bank.db" \
        ONRAMP__DATABASE__URL="$db_url" \
        "$bin" audit >"$out/$db-$name.audit.txt" 2>&1 || rc=$?
    cat "$out/$db-$name.audit.txt"
    echo "   the audit took $(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $began }") s" | tee -a "$out/$db-$name.grown.txt"
    if [ "$rc" -ne 0 ]; then
        echo "!! $db / $name: onramp audit exited $rc: the books do not balance (above)" >&2
        return 1
    fi
}

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), \
$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
idle_pct() { # the machine's idle share over one second, in percent
    local a b
    read -r -a a < <(head -n 1 /proc/stat)
    sleep 1
    read -r -a b < <(head -n 1 /proc/stat)
    local total=0 i
    for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
    echo $((100 * (b[4] + b[5] - a[4] - a[5]) / (total > 0 ? total : 1)))
}

wait_idle() {
    local waited=0 idle
    idle=$(idle_pct)
    while [ "$idle" -lt 85 ] && [ "$waited" -lt "${BENCH_IDLE_WAIT:-300}" ]; do
        [ "$waited" -gt 0 ] || echo "   waiting for the machine to quieten down (idle $idle%)"
        sleep 4
        waited=$((waited + 5))
        idle=$(idle_pct)
    done
    echo "   machine idle $idle% before the run; load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

runs=() # each "<scenario> <books>": the books are empty, or grown (a copy of the preloaded ones)
for scenario in "${scenarios[@]}"; do
    case "$scenario" in
    history | sessions | preloaded-transfers)
        if [ -z "${BENCH_PRELOAD:-}" ]; then
            echo "the $scenario scenario needs BENCH_PRELOAD" >&2
            exit 2
        fi
        ;;
    esac
    if [ -z "${BENCH_PRELOAD:-}" ]; then
        runs+=("$scenario empty")
    else
        case "$scenario" in
        history | sessions | preloaded-transfers) ;;
        *) [ -z "${BENCH_PAIRED:-}" ] || runs+=("$scenario empty") ;;
        esac
        runs+=("$scenario grown")
    fi
done

status=0
for run in "${runs[@]}"; do
    read -r scenario books <<<"$run"
    name=$scenario # the run's database and report files
    [ -z "${BENCH_PAIRED:-}" ] || name="$scenario-$books"
    echo "== $db / $scenario ($books books)"
    start_app "$name" "$books"
    wait_idle
    extra=${LOAD_ARGS:-}
    case "$scenario" in
    transfers-*) extra="$extra ${TRANSFER_ARGS:-}" ;;
    history) extra=${HISTORY_ARGS:-} ;;
    sessions) extra=${SESSIONS_ARGS:-} ;;
    preloaded-transfers) # among every preloaded person: as many as BENCH_PRELOAD's --users
        people=$(sed -n 's/.*--users[ =]\+\([0-9][0-9]*\).*/\1/p' <<<"$BENCH_PRELOAD")
        case "${PRELOADED_TRANSFERS_ARGS:-}" in *--people*) people="" ;; esac
        extra="${people:+--people $people} ${PRELOADED_TRANSFERS_ARGS:-}"
        ;;
    withdrawals) extra="$extra ${WITHDRAWAL_ARGS:-}" ;;
    mixed) extra="$extra ${TRANSFER_ARGS:-} ${WITHDRAWAL_ARGS:-}" ;;
    esac
    case "$scenario" in
    history | sessions | preloaded-transfers) # grown books only (on process 0)
        command=("$load_bin" "$scenario" --app "http://localhost:$port" --token-seed "$token_seed"
            --json "$out/$db-$name.json")
        ;;
    *) command=("$load_bin" --scenario "$scenario" --app "$app_urls" --json "$out/$db-$name.json") ;;
    esac
    # shellcheck disable=SC2086 # LOAD_ARGS and TRANSFER_ARGS are lists of options
    if "${command[@]}" $extra | tee "$out/$db-$name.txt"; then
        :
    else
        status=1
        echo "!! $db / $name FAILED; the app's log ends with:" >&2
        tail -n 20 "$work/$name/app.log" >&2
    fi
    for pid in "${app_pids[@]}"; do
        echo "   app $pid resident: $(awk '/VmRSS|VmHWM/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$pid/status")" |
            tee -a "$out/$db-$name.grown.txt"
    done
    stop_app
    case "$scenario" in
    transfers-* | preloaded-transfers | withdrawals | mixed) audit "$name" || status=1 ;;
    esac
    if [ "$books" = grown ]; then # copies of grown books are large
        if [ "$db" = postgres ]; then
            as_postgres "$pg_bin/dropdb" -h 127.0.0.1 -p "$pg_port" -U postgres "onramp_${name//-/_}"
        else
            rm -f "$work/$name"/onramp.db*
        fi
    fi
done
exit $status
