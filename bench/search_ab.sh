#!/usr/bin/env bash
# A/B of two datapact builds on bench/search.sh's (a) load: alternating rounds, each build started
# on the same store (`serve --demo --unmetered`), a 3 s warm-up, then `wrk -t2 -c64 -d15s` over
# the (a) request paths, with the server's CPU per request from /proc. Run bench/search.sh once
# first (it leaves the store and the paths in BENCH_WORK).
#
# Usage: BASE_BIN=/path/to/old/datapact NEW_BIN=/path/to/new/datapact bench/search_ab.sh
# Environment (defaults): BENCH_WORK (/tmp/datapact-search), BENCH_POSTS (1000000), ROUNDS (3),
# BENCH_PORT (18180; also uses +1).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${BENCH_WORK:-/tmp/datapact-search}
DATA=$WORK/data-${BENCH_POSTS:-1000000}
PORT=${BENCH_PORT:-18180}
: "${BASE_BIN:?set BASE_BIN to the build to compare against}" "${NEW_BIN:?set NEW_BIN to the build under test}"
[[ -d $DATA && -s $WORK/paths-nginx.txt ]] || { echo "run bench/search.sh first: no store or paths in $WORK" >&2; exit 1; }
export BENCH_PATHS_FILE=$WORK/paths-nginx.txt
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
for round in $(seq "${ROUNDS:-3}"); do
    for name in base new; do
        bin=$BASE_BIN; [[ $name == new ]] && bin=$NEW_BIN
        DATAPACT_LOG=warn "$bin" --data-dir "$DATA" serve --demo --unmetered \
            --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" >"$WORK/ab-serve.out" 2>"$WORK/ab-serve.err" &
        pid=$!
        for _ in $(seq 1200); do grep -q '^datapact listening' "$WORK/ab-serve.out" && break; sleep 0.1; done
        BENCH_KEY=$(awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/ab-serve.out")
        export BENCH_KEY
        wrk -t2 -c64 -d3s -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" >/dev/null
        t0=$(ticks "$pid")
        result=$(wrk -t2 -c64 -d15s -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" | grep RESULT)
        t1=$(ticks "$pid")
        requests=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$result")
        rps=$(sed 's/.*rps=\([0-9.]*\).*/\1/' <<<"$result")
        non2xx=$(sed 's/.*non2xx=\([0-9]*\).*/\1/' <<<"$result")
        hz=$(getconf CLK_TCK)
        echo "round $round $name: $rps req/s, $(((t1 - t0) * 1000000 / hz / requests)) µs CPU/request, non-2xx $non2xx"
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
