#!/usr/bin/env bash
# A metered gateway restarted under load on a ledger holding a busy day (issue 5): how many
# requests it serves in its first seconds, and their latency. Every request in flight at the start
# finds the licensee's counts (the month's total, the day's dedup set) missing from memory; they
# must be read from the ledger once, not once per request.
#
# Uses bench/metering.sh's store (run it first). Fills the ledger with BENCH_FILL (30s) of metered
# searches (10 deliveries each) unless it already holds BENCH_MIN_DELIVERIES (2,000,000) of the
# day, then restarts the gateway BENCH_RESTARTS (2) times, each time running wrk -t2 -c64 for
# BENCH_AFTER (5s) from the moment it listens. Set BENCH_BIN to compare another build.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
WORK=${BENCH_WORK:-/tmp/datapact-metering}
DATA=$WORK/data-${BENCH_POSTS:-200000}
PORT=${BENCH_PORT:-18390}
FILL=${BENCH_FILL:-30s}
MIN_DELIVERIES=${BENCH_MIN_DELIVERIES:-2000000}
RESTARTS=${BENCH_RESTARTS:-2}
AFTER=${BENCH_AFTER:-5s}
BENCH_NAME=metering-restart

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

need_tools
[[ -f $DATA/ingested && -s $WORK/paths-search.txt && -s $WORK/serve-metered.out ]] ||
    die "no metering benchmark store in $WORK: run bench/metering.sh first"
if [[ -z ${BENCH_BIN:-} ]]; then
    log "building release binaries in $CARGO_TARGET_DIR"
    (cd "$ROOT" && cargo build --release --quiet -p datapact)
    note_build
else
    BIN=$BENCH_BIN
    BUILD_REV="$BENCH_BIN"
fi
KEY=$(awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/serve-metered.out")
[[ -n $KEY ]] || die "no demo key in $WORK/serve-metered.out"

today_deliveries() {
    sqlite3 "$DATA/ledger.db" "SELECT COUNT(*) FROM deliveries
        WHERE at >= CAST(strftime('%s', 'now', 'start of day') AS INTEGER) * 1000" 2>/dev/null || echo 0
}
if (($(today_deliveries) < MIN_DELIVERIES)); then
    log "filling the ledger: $FILL of metered searches"
    start_server fill "$DATA" "$PORT" $((PORT + 1))
    BENCH_PATHS_FILE=$WORK/paths-search.txt BENCH_KEY=$KEY wrk -t2 -c64 -d"$FILL" -s "$ROOT/bench/paths.lua" \
        "http://127.0.0.1:$PORT" >/dev/null
    kill "$PID_fill"; wait "$PID_fill" 2>/dev/null || true
fi
DELIVERIES=$(today_deliveries)

{
    bench_header "datapact metered gateway restarted under load (issue 5)"
    echo "ledger: $(fmt_int "$DELIVERIES") deliveries today; wrk -t2 -c64 -d$AFTER of lookups started as the gateway listens"
    echo
    echo "| restart | requests served | requests/s | p50 / p99 ms | timeouts (2 s) |"
    echo "|---|---|---|---|---|"
    for r in $(seq "$RESTARTS"); do
        start_server "restart_$r" "$DATA" "$PORT" $((PORT + 1))
        out=$WORK/wrk-restart-$r.out
        BENCH_PATHS_FILE=$WORK/paths-lookup.txt BENCH_KEY=$KEY wrk -t2 -c64 -d"$AFTER" --latency \
            -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" >"$out"
        pid_var=PID_restart_$r
        kill "${!pid_var}" 2>/dev/null || true
        wait "${!pid_var}" 2>/dev/null || true
        line=$(grep '^RESULT' "$out" || true)
        field() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<"$line"; }
        timeouts=$(sed -n 's/.*timeout \([0-9]*\).*/\1/p' "$out")
        if [[ -n $line ]]; then
            echo "| $r | $(fmt_int "$(field requests)") | $(field rps) | $(awk -v a="$(field p50_us)" -v b="$(field p99_us)" 'BEGIN { printf "%.2f / %.2f", a / 1000, b / 1000 }') | ${timeouts:-0} |"
        else
            echo "| $r | 0 | 0 | - | ${timeouts:-?} |"
        fi
    done
} | tee "$WORK/results-restart.md"
