#!/usr/bin/env bash
# A/B of two datapact builds on the *metered* path (issue 5): alternating rounds, each run one
# build alone on bench/metering.sh's store with a fresh ledger, a 2 s warm-up, then
# `wrk -t2 -c64 -d8s` of lookups and of searches (bench/metering.sh's paths). Per run: requests/s,
# p99, the server's CPU per request, the ledger writer thread's CPU per request (from
# /proc/PID/task) and the group commit's mean rows per batch (from /metrics). The writer's CPU is
# the steadiest of these on a noisy machine. Run bench/metering.sh once first.
#
# Usage: BASE_BIN=/path/to/old/datapact NEW_BIN=/path/to/new/datapact bench/metering_ab.sh
# Environment (defaults): BENCH_WORK (/tmp/datapact-metering), BENCH_POSTS (200000), ROUNDS (3),
# BENCH_DURATION (8s), BENCH_PORT (18480; also uses +1), BENCH_SERVE_ARGS (extra `serve` flags).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/datapact-metering}
DATA=$WORK/data-${BENCH_POSTS:-200000}
PORT=${BENCH_PORT:-18480}
: "${BASE_BIN:?set BASE_BIN to the build to compare against}" "${NEW_BIN:?set NEW_BIN to the build under test}"
[[ -f $DATA/ingested && -s $WORK/paths-search.txt && -s $WORK/serve-metered.out ]] ||
    { echo "run bench/metering.sh first: no store, paths or key in $WORK" >&2; exit 1; }
BENCH_KEY=$(awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/serve-metered.out")
export BENCH_KEY
ticks() { awk '{ print $14 + $15 }' "$1"; }
hz=$(getconf CLK_TCK)
echo "| round | load | build | req/s | p99 ms | CPU µs/request | writer µs/request | rows per batch |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq "${ROUNDS:-3}"); do
    for load in lookup search; do
        builds=(base new)
        ((round % 2 == 0)) && builds=(new base)
        for name in "${builds[@]}"; do
            bin=$BASE_BIN; [[ $name == new ]] && bin=$NEW_BIN
            rm -f "$DATA"/ledger.db*
            # shellcheck disable=SC2086
            DATAPACT_LOG=warn "$bin" --data-dir "$DATA" serve ${BENCH_SERVE_ARGS:-} \
                --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" >"$WORK/ab-serve.out" 2>"$WORK/ab-serve.err" &
            pid=$!
            for _ in $(seq 1200); do grep -q '^datapact listening' "$WORK/ab-serve.out" && break; sleep 0.1; done
            grep -q '^datapact listening' "$WORK/ab-serve.out" || { echo "$name did not start: $(tail -3 "$WORK/ab-serve.err")" >&2; exit 1; }
            writer=$(grep -l '^ledger-writer$' /proc/"$pid"/task/*/comm | head -1) ||
                { echo "$name has no ledger-writer thread (is it metered?)" >&2; kill "$pid"; exit 1; }
            writer=${writer%/comm}/stat
            export BENCH_PATHS_FILE=$WORK/paths-$load.txt
            wrk -t2 -c64 -d2s -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" >/dev/null
            t0=$(ticks "/proc/$pid/stat") w0=$(ticks "$writer")
            result=$(wrk -t2 -c64 -d"${BENCH_DURATION:-8s}" -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" | grep RESULT)
            t1=$(ticks "/proc/$pid/stat") w1=$(ticks "$writer")
            metrics=$(curl -sS --fail -H "Authorization: Bearer $(cat "$DATA/admin-token")" "http://127.0.0.1:$((PORT + 1))/metrics")
            kill "$pid"; wait "$pid" 2>/dev/null || true
            requests=$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$result")
            awk -v r="$round" -v l="$load" -v n="$name" -v hz="$hz" -v req="$requests" -v cpu=$((t1 - t0)) -v w=$((w1 - w0)) \
                -v rps="$(sed 's/.* rps=\([0-9.]*\).*/\1/' <<<"$result")" -v p99="$(sed 's/.* p99_us=\([0-9]*\).*/\1/' <<<"$result")" \
                -v rows="$(awk '/^datapact_ledger_batch_rows_sum/ { s = $NF } /^datapact_ledger_batch_rows_count/ { c = $NF } END { if (c) printf "%.1f", s / c }' <<<"$metrics")" \
                'BEGIN { printf "| %d | %s | %s | %.0f | %.2f | %.1f | %.1f | %s |\n", r, l, n, rps, p99 / 1000, 1e6 * cpu / hz / req, 1e6 * w / hz / req, rows }'
        done
    done
done
