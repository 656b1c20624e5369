#!/usr/bin/env bash
# Terms-enforcement benchmark (issue 4, item 9), with the conventions of bench/run.sh (issue 2):
# release build, 127.0.0.1 only, bench/terms.toml applied (limits out of reach), alternating
# rounds, machine load recorded before every phase, server CPU from /proc.
#
# Two gateways on the same store, with the same key: `serve` (terms enforced on every request:
# agreement, status, term, network, endpoint and purpose checks, the exact rate limiter and its
# X/IETF headers) and `serve --unenforced` (the hidden benchmark flag: checks and limiter off).
# Both run the whole time; they take turns under load, in ABBA order (round 1 enforced first,
# round 2 unenforced first, ...), so drift in the background load hits both alike.
#   - `GET /2/tweets/:id` rotating over 1,000 post ids (as run.sh), and
#   - `GET /2/tweets/search/recent?query=A%20B` (default max_results=10) rotating over 200
#     random two-term queries from frequent words,
# each with wrk -t2 -c64 (requests/s, loaded latency) and wrk -t1 -c1 (unloaded latency).
# Targets: enforced serves <= 10 % fewer requests/s, and adds <= 0.5 ms at p99.
#
# Usage: bench/terms.sh. Environment (defaults): BENCH_WORK (/tmp/datapact-terms), BENCH_POSTS
# (200000), BENCH_REUSE (1: keep the corpus and store of an earlier run), BENCH_ROUNDS (4),
# BENCH_THREADS (2), BENCH_CONNECTIONS (64), BENCH_DURATION (15s), BENCH_C1_DURATION (10s; 0
# skips the one-connection runs), BENCH_WARMUP (3s), BENCH_PORT (18280; also uses +1 to +3),
# BENCH_QUIET_WAIT (3), CARGO_TARGET_DIR (/tmp/target-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
export BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-3}
WORK=${BENCH_WORK:-/tmp/datapact-terms}
POSTS=${BENCH_POSTS:-200000}
REUSE=${BENCH_REUSE:-1}
ROUNDS=${BENCH_ROUNDS:-4}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15s}
C1_DURATION=${BENCH_C1_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
PORT=${BENCH_PORT:-18280}
BENCH_NAME=terms
PY="python3 $ROOT/bench/search_queries.py"

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

need_tools
for p in "$PORT" $((PORT + 1)) $((PORT + 2)) $((PORT + 3)); do
    port_free "$p" || die "port $p on 127.0.0.1 is in use; set BENCH_PORT"
done

log "building release binaries in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --quiet -p datapact)
note_build
"$BIN" serve --help >/dev/null
"$BIN" serve --unenforced --help >/dev/null 2>&1 || die "this build has no serve --unenforced"

# --- data --------------------------------------------------------------------------------------
mkdir -p "$WORK"
CORPUS=$WORK/corpus-$POSTS.jsonl
DATA=$WORK/data-$POSTS
if ! ((REUSE)) || [[ ! -s $CORPUS || ! -f $DATA/ingested ]]; then
    rm -rf "$DATA" "$CORPUS"
    log "writing the demo corpus ($POSTS posts) and ingesting it"
    "$BIN" demo-corpus --posts "$POSTS" --out "$CORPUS" 2>/dev/null
    DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" ingest --quiet "$CORPUS" >"$WORK/ingest.out"
    touch "$DATA/ingested"
fi
log "applying bench/terms.toml"
DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" apply "$ROOT/bench/terms.toml" >"$WORK/apply.out"
STORED=$(sqlite3 "$DATA/datapact.db" 'SELECT COUNT(*) FROM posts WHERE deleted_at IS NULL')

# 1,000 ids spread evenly over the table (as run.sh), and 200 random two-term queries.
sqlite3 "$DATA/datapact.db" "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
    FROM posts WHERE deleted_at IS NULL) WHERE n % (SELECT MAX(1, COUNT(*) / 1000) FROM posts) = 0
    LIMIT 1000" | sed 's|^|/2/tweets/|' >"$WORK/paths-lookup.txt"
[[ $(wc -l <"$WORK/paths-lookup.txt") -eq 1000 ]] || die "could not pick 1,000 post ids"
[[ -s $WORK/words.tsv ]] || $PY words "$CORPUS" 100000 >"$WORK/words.tsv"
$PY queries "$WORK/words.tsv" 200 1000 4 | python3 -c 'import sys, urllib.parse
for line in sys.stdin:
    print("/2/tweets/search/recent?query=" + urllib.parse.quote(line.rstrip("\n"), safe=""))' >"$WORK/paths-search.txt"

# --- the two gateways --------------------------------------------------------------------------
# The enforced one issues the demo keys (--demo); the unenforced one starts afterwards on the same
# store, so it loads the same keys.
log "starting datapact serve (enforced) on 127.0.0.1:$PORT and serve --unenforced on :$((PORT + 2))"
start_server enforced "$DATA" "$PORT" $((PORT + 1)) --demo
KEY=$(demo_key enforced)
[[ -n $KEY ]] || die "no demo key in the serve output"
start_server unenforced "$DATA" $((PORT + 2)) $((PORT + 3)) --unenforced
grep -q 'NOT enforced' "$WORK/serve-unenforced.err" || die "the unenforced gateway did not say so"
declare -A SPORT=([enforced]=$PORT [unenforced]=$((PORT + 2)))
declare -A SPID=([enforced]=$PID_enforced [unenforced]=$PID_unenforced)
for s in enforced unenforced; do
    for f in lookup search; do
        curl -sS --fail -D "$WORK/headers-$s-$f.txt" -o "$WORK/body-$s-$f.json" -H "Authorization: Bearer $KEY" \
            "http://127.0.0.1:${SPORT[$s]}$(head -1 "$WORK/paths-$f.txt")"
    done
done
cmp -s "$WORK/body-enforced-lookup.json" "$WORK/body-unenforced-lookup.json" || die "the two gateways answer different lookups"
cmp -s "$WORK/body-enforced-search.json" "$WORK/body-unenforced-search.json" || die "the two gateways answer different searches"
grep -qi '^x-rate-limit-remaining' "$WORK/headers-enforced-lookup.txt" || die "the enforced gateway sent no rate-limit headers"

# --- rounds ------------------------------------------------------------------------------------
rm -f "$WORK"/wrk-*.out
for r in $(seq "$ROUNDS"); do
    order=(enforced unenforced)
    ((r % 2 == 0)) && order=(unenforced enforced)
    log "round $r/$ROUNDS: ${order[*]}"
    for f in lookup search; do
        for s in "${order[@]}"; do
            run_wrk "$f-$s" "${SPORT[$s]}" "$WORK/paths-$f.txt" "$THREADS" "$CONNS" "$DURATION" "${SPID[$s]}"
        done
        if [[ $C1_DURATION != 0 ]]; then
            for s in "${order[@]}"; do
                run_wrk "$f-c1-$s" "${SPORT[$s]}" "$WORK/paths-$f.txt" 1 1 "$C1_DURATION" "${SPID[$s]}"
            done
        fi
    done
done
# Every request must have been admitted (limits out of reach): check the enforced side's counters.
curl -sS --fail -D - -o /dev/null -H "Authorization: Bearer $KEY" \
    "http://127.0.0.1:$PORT$(head -1 "$WORK/paths-lookup.txt")" | grep -i '^x-rate-limit' >"$WORK/headers-after.txt" || true

# --- report ------------------------------------------------------------------------------------
# fewer PCT: how many % fewer requests/s the enforced gateway served; added p99 in ms.
fewer() { awk -v e="$(rps "$1-enforced")" -v u="$(rps "$1-unenforced")" 'BEGIN { printf "%.1f", 100 * (u - e) / u }'; }
added() { awk -v e="${P99[$1-enforced]}" -v u="${P99[$1-unenforced]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f", (e - u) / r / 1000 }'; }
met_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "yes" : "no" }'; }
# Per-round requests/s ratios (enforced / unenforced), to show the spread.
round_ratios() {
    paste <(grep '^RESULT' "$WORK/wrk-$1-enforced.out" | sed 's/.* rps=\([0-9.]*\).*/\1/') \
        <(grep '^RESULT' "$WORK/wrk-$1-unenforced.out" | sed 's/.* rps=\([0-9.]*\).*/\1/') |
        awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2 }'
}
# Per-round p99 differences (enforced - unenforced), ms.
round_p99() {
    paste <(grep '^RESULT' "$WORK/wrk-$1-enforced.out" | sed 's/.* p99_us=\([0-9]*\).*/\1/') \
        <(grep '^RESULT' "$WORK/wrk-$1-unenforced.out" | sed 's/.* p99_us=\([0-9]*\).*/\1/') |
        awk '{ printf "%s%+.2f", (NR > 1 ? ", " : ""), ($1 - $2) / 1000 }'
}
{
    bench_header "datapact terms-enforcement benchmark (issue 4)"
    echo "store: $STORED posts; both gateways on the same data dir and key; $ROUNDS rounds, ABBA order; wrk -t$THREADS -c$CONNS -d$DURATION and -t1 -c1 -d$C1_DURATION, after a $WARMUP warm-up"
    echo
    echo "| measure | enforced (\`serve\`) | unenforced (\`serve --unenforced\`) | difference | target | met? |"
    echo "|---|---|---|---|---|---|"
    for f in lookup search; do
        case $f in
            lookup) label='`GET /2/tweets/:id`' ;;
            search) label='`GET /2/tweets/search/recent` (two terms, max_results=10)' ;;
        esac
        echo "| $label, req/s (c$CONNS) | $(rps "$f-enforced") | $(rps "$f-unenforced") | $(fewer "$f") % fewer (per round e/u: $(round_ratios "$f")) | ≤ 10 % fewer | $(met_le "$(fewer "$f")" 10) |"
        echo "| same, p50 / p99 ms (c$CONNS) | $(lat "$f-enforced") | $(lat "$f-unenforced") | p99 $(added "$f") ms (per round: $(round_p99 "$f")) | ≤ +0.5 ms | $(met_le "$(added "$f")" 0.5) |"
        if [[ $C1_DURATION != 0 ]]; then
            echo "| same, p50 / p99 ms (one connection) | $(lat "$f-c1-enforced") | $(lat "$f-c1-unenforced") | p99 $(added "$f-c1") ms (per round: $(round_p99 "$f-c1")) | ≤ +0.5 ms | $(met_le "$(added "$f-c1")" 0.5) |"
        fi
        echo "| same, server CPU µs/request (c$CONNS) | $(cpu_us "$f-enforced") | $(cpu_us "$f-unenforced") | $(($(cpu_us "$f-enforced") - $(cpu_us "$f-unenforced"))) µs | | |"
        echo "| same, response bytes avg (incl. headers) | $(avg_body "$f-enforced") | $(avg_body "$f-unenforced") | | | |"
    done
    echo
    echo "enforced gateway's rate-limit headers after the run: $(tr -d '\r' <"$WORK/headers-after.txt" | tr '\n' ' ')"
    echo "CPU busy (all processes) just before each phase: ${QUIET_NOTE%, }"
} | tee "$WORK/results.md"
log "results also in $WORK/results.md; raw wrk output in $WORK/wrk-*.out"
