#!/usr/bin/env bash
# The A/B benchmark shared by bench/terms.sh (issue 4) and bench/metering.sh (issue 5), with the
# conventions of bench/run.sh (issue 2): release build, 127.0.0.1 only, bench/terms.toml applied
# (limits out of reach), alternating rounds, machine load recorded before every phase, server CPU
# from /proc.
#
# Two gateways on the same store, with the same key: A is `serve`, B is `serve $AB_B_FLAG`. Both run
# the whole time; they take turns under load in ABBA order (round 1 A first, round 2 B first, ...),
# so drift in the background load hits both alike.
#   - `GET /2/tweets/:id` rotating over 1,000 post ids (as run.sh), and
#   - `GET /2/tweets/search/recent?query=A%20B` (default max_results=10) rotating over 200
#     random two-term queries from frequent words,
# each with wrk -t2 -c64 (requests/s, loaded latency) and wrk -t1 -c1 (unloaded latency).
#
# The caller sets AB_NAME, AB_A, AB_B, AB_B_FLAG, AB_B_SAYS (what B logs to prove the flag took),
# AB_TITLE, AB_PORT, AB_RPS_TARGET (% fewer requests/s allowed), AB_P99_TARGET (ms added at p99
# allowed), and may set AB_COMMON_FLAGS (given to both) and AB_SAME_BYTES=0 (the flag changes the
# bytes served: compare them with typography folded), and define ab_check_a, ab_after_rounds and
# ab_report (extra report lines).
#
# Environment (defaults): BENCH_WORK (/tmp/datapact-$AB_NAME), BENCH_POSTS (200000), BENCH_REUSE
# (1: keep the corpus and store of an earlier run), BENCH_ROUNDS (4), BENCH_THREADS (2),
# BENCH_CONNECTIONS (64), BENCH_DURATION (15s), BENCH_C1_DURATION (10s; 0 skips the one-connection
# runs), BENCH_WARMUP (3s), BENCH_PORT ($AB_PORT; also uses +1 to +3), BENCH_QUIET_WAIT (3),
# CARGO_TARGET_DIR (/tmp/target-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
: "${AB_NAME:?}" "${AB_A:?}" "${AB_B:?}" "${AB_B_FLAG:?}" "${AB_B_SAYS:?}" "${AB_TITLE:?}" "${AB_RPS_TARGET:?}" "${AB_P99_TARGET:?}"
export BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-3}
WORK=${BENCH_WORK:-/tmp/datapact-$AB_NAME}
POSTS=${BENCH_POSTS:-200000}
REUSE=${BENCH_REUSE:-1}
ROUNDS=${BENCH_ROUNDS:-4}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15s}
C1_DURATION=${BENCH_C1_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
PORT=${BENCH_PORT:-$AB_PORT}
BENCH_NAME=$AB_NAME
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
"$BIN" serve "$AB_B_FLAG" --help >/dev/null 2>&1 || die "this build has no serve $AB_B_FLAG"

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
# A issues the demo keys (--demo); B starts afterwards on the same store, so it loads the same keys.
log "starting datapact serve ($AB_A) on 127.0.0.1:$PORT and serve $AB_B_FLAG ($AB_B) on :$((PORT + 2))"
start_server "$AB_A" "$DATA" "$PORT" $((PORT + 1)) --demo ${AB_COMMON_FLAGS:-}
KEY=$(demo_key "$AB_A")
[[ -n $KEY ]] || die "no demo key in the serve output"
start_server "$AB_B" "$DATA" $((PORT + 2)) $((PORT + 3)) "$AB_B_FLAG" ${AB_COMMON_FLAGS:-}
grep -q "$AB_B_SAYS" "$WORK/serve-$AB_B.err" || die "the $AB_B gateway did not say so"
declare -A SPORT=(["$AB_A"]=$PORT ["$AB_B"]=$((PORT + 2)))
PIDVAR_A=PID_$AB_A PIDVAR_B=PID_$AB_B
declare -A SPID=(["$AB_A"]=${!PIDVAR_A} ["$AB_B"]=${!PIDVAR_B})
for s in "$AB_A" "$AB_B"; do
    for f in lookup search; do
        curl -sS --fail -D "$WORK/headers-$s-$f.txt" -o "$WORK/body-$s-$f.json" -H "Authorization: Bearer $KEY" \
            "http://127.0.0.1:${SPORT[$s]}$(head -1 "$WORK/paths-$f.txt")"
    done
done
# Same answers, byte for byte, unless the flag changes the bytes on purpose (AB_SAME_BYTES=0: then
# the same answers once typography is folded, which is all a fingerprint changes).
same() {
    if [[ ${AB_SAME_BYTES:-1} == 1 ]]; then
        cmp -s "$1" "$2"
    else
        cmp -s <(python3 "$ROOT/bench/fold_typography.py" <"$1") <(python3 "$ROOT/bench/fold_typography.py" <"$2")
    fi
}
same "$WORK/body-$AB_A-lookup.json" "$WORK/body-$AB_B-lookup.json" || die "the two gateways answer different lookups"
same "$WORK/body-$AB_A-search.json" "$WORK/body-$AB_B-search.json" || die "the two gateways answer different searches"
if declare -F ab_check_a >/dev/null; then ab_check_a; fi

# --- rounds ------------------------------------------------------------------------------------
rm -f "$WORK"/wrk-*.out
for r in $(seq "$ROUNDS"); do
    order=("$AB_A" "$AB_B")
    ((r % 2 == 0)) && order=("$AB_B" "$AB_A")
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
if declare -F ab_after_rounds >/dev/null; then ab_after_rounds; fi

# --- report ------------------------------------------------------------------------------------
# fewer PCT: how many % fewer requests/s A served than B; added p99 in ms.
fewer() { awk -v e="$(rps "$1-$AB_A")" -v u="$(rps "$1-$AB_B")" 'BEGIN { printf "%.1f", 100 * (u - e) / u }'; }
added() { awk -v e="${P99[$1-$AB_A]}" -v u="${P99[$1-$AB_B]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f", (e - u) / r / 1000 }'; }
met_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "yes" : "no" }'; }
# Per-round requests/s ratios (A / B), to show the spread.
round_ratios() {
    paste <(grep '^RESULT' "$WORK/wrk-$1-$AB_A.out" | sed 's/.* rps=\([0-9.]*\).*/\1/') \
        <(grep '^RESULT' "$WORK/wrk-$1-$AB_B.out" | sed 's/.* rps=\([0-9.]*\).*/\1/') |
        awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2 }'
}
# Per-round p99 differences (A - B), ms.
round_p99() {
    paste <(grep '^RESULT' "$WORK/wrk-$1-$AB_A.out" | sed 's/.* p99_us=\([0-9]*\).*/\1/') \
        <(grep '^RESULT' "$WORK/wrk-$1-$AB_B.out" | sed 's/.* p99_us=\([0-9]*\).*/\1/') |
        awk '{ printf "%s%+.2f", (NR > 1 ? ", " : ""), ($1 - $2) / 1000 }'
}
{
    bench_header "$AB_TITLE"
    echo "store: $STORED posts; both gateways on the same data dir and key; $ROUNDS rounds, ABBA order; wrk -t$THREADS -c$CONNS -d$DURATION and -t1 -c1 -d$C1_DURATION, after a $WARMUP warm-up"
    echo
    echo "| measure | $AB_A (\`serve\`) | $AB_B (\`serve $AB_B_FLAG\`) | difference | target | met? |"
    echo "|---|---|---|---|---|---|"
    for f in lookup search; do
        case $f in
            lookup) label='`GET /2/tweets/:id`' ;;
            search) label='`GET /2/tweets/search/recent` (two terms, max_results=10)' ;;
        esac
        echo "| $label, req/s (c$CONNS) | $(rps "$f-$AB_A") | $(rps "$f-$AB_B") | $(fewer "$f") % fewer (per round A/B: $(round_ratios "$f")) | ≤ $AB_RPS_TARGET % fewer | $(met_le "$(fewer "$f")" "$AB_RPS_TARGET") |"
        echo "| same, p50 / p99 ms (c$CONNS) | $(lat "$f-$AB_A") | $(lat "$f-$AB_B") | p99 $(added "$f") ms (per round: $(round_p99 "$f")) | ≤ +$AB_P99_TARGET ms | $(met_le "$(added "$f")" "$AB_P99_TARGET") |"
        if [[ $C1_DURATION != 0 ]]; then
            echo "| same, p50 / p99 ms (one connection) | $(lat "$f-c1-$AB_A") | $(lat "$f-c1-$AB_B") | p99 $(added "$f-c1") ms (per round: $(round_p99 "$f-c1")) | ≤ +$AB_P99_TARGET ms | $(met_le "$(added "$f-c1")" "$AB_P99_TARGET") |"
        fi
        echo "| same, server CPU µs/request (c$CONNS) | $(cpu_us "$f-$AB_A") | $(cpu_us "$f-$AB_B") | $(($(cpu_us "$f-$AB_A") - $(cpu_us "$f-$AB_B"))) µs | | |"
        echo "| same, response bytes avg (incl. headers) | $(avg_body "$f-$AB_A") | $(avg_body "$f-$AB_B") | | | |"
    done
    echo
    if declare -F ab_report >/dev/null; then ab_report; fi
    echo "CPU busy (all processes) just before each phase: ${QUIET_NOTE%, }"
} | tee "$WORK/results.md"
log "results also in $WORK/results.md; raw wrk output in $WORK/wrk-*.out"
