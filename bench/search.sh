#!/usr/bin/env bash
# Search benchmark (issue 3, item 6), with the conventions of bench/run.sh (issue 2): release
# build, 127.0.0.1 only, bench/terms.toml applied (limits out of reach), alternating rounds,
# machine load recorded before every phase, server CPU from /proc.
#
#  (a) `GET /2/tweets/search/recent?query=A%20B&max_results=100&tweet.fields=...` requests/s
#      against nginx serving the same ~40 KB responses as static files (target >= 0.4x). Of the
#      common two-term queries (pairs of the 25 most frequent words) whose page is full (100
#      posts) and 30-50 KB, the 8 closest to 40 KB are fetched once; nginx serves those bytes,
#      picked by the `query` argument.
#  (b) search latency over 1,000,000 posts (target p99 <= 20 ms for a two-term query): the
#      gateway's start-up time (it builds its index from the store before it listens) and RSS,
#      then ~1,000 random two-term queries from frequent words over HTTP: one at a time from a
#      Python client (per-query times), wrk with one connection (latency distribution,
#      requests/s), and wrk with 64 connections (throughput under load, information only).
#  (c) datapact-search's in-process latency example (`--example latency`), for comparison.
#
# Usage: bench/search.sh. Environment (defaults): BENCH_WORK (/tmp/datapact-search),
# BENCH_POSTS (1000000), BENCH_REUSE (1: keep the corpus and store of an earlier run with the
# same BENCH_POSTS instead of writing and ingesting them again), BENCH_ROUNDS (2), BENCH_THREADS
# (2), BENCH_CONNECTIONS (64), BENCH_DURATION (15s), BENCH_WARMUP (3s), BENCH_PORT (18180; also
# uses +1 and +10), BENCH_SERVE_ARGS (extra `serve` arguments, e.g. --unmetered), BENCH_QUERIES (1000), BENCH_NGINX_QUERIES (8), BENCH_EXAMPLE (1: run the
# in-process example too), BENCH_QUIET_WAIT (10), CARGO_TARGET_DIR (/tmp/target-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
WORK=${BENCH_WORK:-/tmp/datapact-search}
POSTS=${BENCH_POSTS:-1000000}
REUSE=${BENCH_REUSE:-1}
ROUNDS=${BENCH_ROUNDS:-2}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
PORT=${BENCH_PORT:-18180}
ADMIN_PORT=$((PORT + 1))
NGINX_PORT=$((PORT + 10))
NQUERIES=${BENCH_QUERIES:-1000}
NNGINX=${BENCH_NGINX_QUERIES:-8}
EXAMPLE=${BENCH_EXAMPLE:-1}
FIELDS='&max_results=100&tweet.fields=created_at,lang,public_metrics,author_id'
BENCH_NAME=search
PY="python3 $ROOT/bench/search_queries.py"

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
trap stop_all EXIT
trap 'exit 130' INT TERM

need_tools
for p in "$PORT" "$ADMIN_PORT" "$NGINX_PORT"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use; set BENCH_PORT"
done

# --- build -------------------------------------------------------------------------------------
log "building release binaries in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --quiet -p datapact &&
    if ((EXAMPLE)); then cargo build --release --quiet -p datapact-search --example latency; fi)
note_build

# --- data: POSTS demo posts, ingested --------------------------------------------------------------
mkdir -p "$WORK"
CORPUS=$WORK/corpus-$POSTS.jsonl
DATA=$WORK/data-$POSTS
INGEST_NOTE="reused the store of an earlier run"
[[ -s $WORK/ingest.time ]] && read -r w u s m <"$WORK/ingest.time" &&
    INGEST_NOTE+=" (whose ingest took ${w} s wall, $(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }') CPU-s, max RSS $((m / 1024)) MB)"
if ! ((REUSE)) || [[ ! -s $CORPUS || ! -f $DATA/ingested ]]; then
    rm -rf "$DATA" "$CORPUS"
    log "writing the demo corpus ($POSTS posts)"
    "$BIN" demo-corpus --posts "$POSTS" --out "$CORPUS" 2>/dev/null
    sync
    wait_quiet "ingest"
    log "ingesting $POSTS posts"
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/ingest.time" \
        env DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" ingest --quiet "$CORPUS" >"$WORK/ingest.out"
    read -r w u s m <"$WORK/ingest.time"
    INGEST_NOTE="ingest took ${w} s wall, $(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.1f", u + s }') CPU-s, max RSS $((m / 1024)) MB"
    touch "$DATA/ingested"
    log "applying bench/terms.toml"
    DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" apply "$ROOT/bench/terms.toml" >"$WORK/apply.out"
fi
LINES=$(wc -l <"$CORPUS")
STORED=$(sqlite3 "$DATA/datapact.db" 'SELECT COUNT(*) FROM posts WHERE deleted_at IS NULL')
DB_MB=$(du -sm "$DATA" | cut -f1)
CORPUS_MB=$(($(stat -c %s "$CORPUS") / 1000000))

# Frequent words (document frequency in the first 100k posts) and the random queries.
[[ -s $WORK/words.tsv ]] || $PY words "$CORPUS" 100000 >"$WORK/words.tsv"
$PY queries "$WORK/words.tsv" "$NQUERIES" 1000 2026 >"$WORK/queries.txt"
urlq() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
python3 -c 'import sys, urllib.parse
for line in sys.stdin:
    if line.strip():
        print("/2/tweets/search/recent?query=" + urllib.parse.quote(line.rstrip("\n"), safe="") + sys.argv[1])' \
    "$FIELDS" <"$WORK/queries.txt" >"$WORK/paths-latency.txt"

# --- start-up: the gateway indexes the whole store before it listens ------------------------------
sync
wait_quiet "start-up"
log "starting datapact serve --demo on 127.0.0.1:$PORT ($STORED posts to index)"
BENCH_SERVE_LOG='warn,datapact_gateway::server=info' start_server dp "$DATA" "$PORT" "$ADMIN_PORT" --demo \
    ${BENCH_SERVE_ARGS:-}
KEY=$(demo_key dp)
[[ -n $KEY ]] || die "no demo key in the serve output"
INDEX_MS=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/serve-dp.err" | grep 'search index built' | grep -o 'elapsed_ms=[0-9]*' | cut -d= -f2 || true)
RSS_START=$(rss_mb "$PID_dp")
HWM_START=$(rss_mb "$PID_dp" VmHWM:)
ANON_START=$(rss_mb "$PID_dp" RssAnon:)
FILE_START=$(rss_mb "$PID_dp" RssFile:)
log "listening after $STARTUP_S_dp s (index ${INDEX_MS:-?} ms), RSS $RSS_START MB (peak $HWM_START MB)"

rm -f "$WORK"/wrk-*.out
# --- (a) max_results=100, ~40 KB pages, against nginx --------------------------------------------
log "picking $NNGINX common two-term queries with full pages closest to 40 KB"
$PY pick "http://127.0.0.1:$PORT" "$KEY" "$WORK/words.tsv" "$NNGINX" "$FIELDS" 30000 50000 >"$WORK/queries-nginx.txt"
rm -rf "$WORK/static" && mkdir -p "$WORK/static/search" "$WORK/nginx-tmp"
: >"$WORK/paths-nginx.txt"
{
    echo 'map $arg_query $search_file {'
    echo '    default /search/missing;'
    n=0
    while read -r q; do
        n=$((n + 1))
        e=$(urlq "$q")
        path="/2/tweets/search/recent?query=$e$FIELDS"
        echo "$path" >>"$WORK/paths-nginx.txt"
        curl -sS --fail -H "Authorization: Bearer $KEY" -o "$WORK/static/search/$n.json" "http://127.0.0.1:$PORT$path"
        echo "    \"$e\" /search/$n.json;"
    done <"$WORK/queries-nginx.txt"
    echo '}'
} >"$WORK/search-map.conf"
SEARCH_BYTES=$(stat -c %s "$WORK"/static/search/*.json | awk '{ s += $1 } END { printf "%.0f", s / NR }')
chmod -R a+rX "$WORK/static" "$WORK/search-map.conf"
chmod a+x "$WORK"
WORKERS=$(nproc)
sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@WORKERS@|$WORKERS|g" \
    "$ROOT/bench/nginx-search.conf.in" >"$WORK/nginx.conf"
"$NGINX" -t -q -p "$WORK" -c "$WORK/nginx.conf" 2>"$WORK/nginx-t.err" || die "nginx config: $(cat "$WORK/nginx-t.err")"
log "starting nginx ($WORKERS workers) on 127.0.0.1:$NGINX_PORT"
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>>"$WORK/nginx-error.log" &
NGINX_PID=$!
for _ in $(seq 100); do port_free "$NGINX_PORT" || break; sleep 0.1; done
n=0
while read -r path; do
    n=$((n + 1))
    curl -sS --fail "http://127.0.0.1:$NGINX_PORT$path" | cmp -s - "$WORK/static/search/$n.json" ||
        die "nginx does not serve the datapact bytes for $path"
done <"$WORK/paths-nginx.txt"
NGINX_WORKER_PIDS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')

for r in $(seq "$ROUNDS"); do
    run_wrk datapact "$PORT" "$WORK/paths-nginx.txt" "$THREADS" "$CONNS" "$DURATION" "$PID_dp"
    # shellcheck disable=SC2086
    run_wrk nginx "$NGINX_PORT" "$WORK/paths-nginx.txt" "$THREADS" "$CONNS" "$DURATION" "$NGINX_PID" $NGINX_WORKER_PIDS
done
kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null || true
NGINX_PID=

# --- (b) latency of random two-term queries over the whole store ----------------------------------
wait_quiet "latency (python)"
log "latency: $NQUERIES random two-term queries, one at a time (a warm-up pass, then the measured pass)"
$PY latency "http://127.0.0.1:$PORT" "$KEY" "$WORK/queries.txt" "$FIELDS" "$WORK/latency-warmup.tsv" >"$WORK/latency-warmup.out"
wait_quiet "latency (python, measured)"
$PY latency "http://127.0.0.1:$PORT" "$KEY" "$WORK/queries.txt" "$FIELDS" "$WORK/latency.tsv" | tee "$WORK/latency.out" >&2
pyf() { sed "s/.* $1=\([0-9.]*\).*/\1/" "$WORK/latency.out"; }
run_wrk random-c1 "$PORT" "$WORK/paths-latency.txt" 1 1 "$DURATION" "$PID_dp"
run_wrk random-c64 "$PORT" "$WORK/paths-latency.txt" "$THREADS" "$CONNS" "$DURATION" "$PID_dp"
RSS_END=$(rss_mb "$PID_dp")
HWM_END=$(rss_mb "$PID_dp" VmHWM:)
ANON_END=$(rss_mb "$PID_dp" RssAnon:)
FILE_END=$(rss_mb "$PID_dp" RssFile:)
stop_all
SERVER_PIDS=()

# --- (c) the in-process example ----------------------------------------------------------------
if ((EXAMPLE)); then
    wait_quiet "example"
    log "datapact-search latency example (1M posts, 2000 queries)"
    "$CARGO_TARGET_DIR/release/examples/latency" 1000000 2000 >"$WORK/example.out" 2>&1 ||
        die "the latency example failed: $(tail -5 "$WORK/example.out")"
fi

# --- report ------------------------------------------------------------------------------------
met_ge() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "yes" : "no" }'; }
met_le() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t) ? "yes" : "no" }'; }
R_SEARCH=$(ratio "$(rps datapact)" "$(rps nginx)")
{
    bench_header "datapact search benchmark (issue 3)"
    echo "store: $STORED posts ($LINES corpus lines, $CORPUS_MB MB JSONL), datapact data dir $DB_MB MB; $INGEST_NOTE"
    echo "(a) $NNGINX queries, $ROUNDS rounds alternating, wrk -t$THREADS -c$CONNS -d$DURATION after a $WARMUP warm-up, nginx $WORKERS workers; body avg $SEARCH_BYTES B"
    echo "(b) $NQUERIES random two-term queries (terms: log-uniform rank among the 1,000 most frequent words); every request with $FIELDS"
    echo
    echo "| measure | datapact | baseline | ratio | target | met? |"
    echo "|---|---|---|---|---|---|"
    echo "| search max_results=100 (~$((SEARCH_BYTES / 1000)) KB), req/s | $(rps datapact) | $(rps nginx), nginx static file | $R_SEARCH | ≥ 0.4 | $(met_ge "$R_SEARCH" 0.4) |"
    echo "| same, p50 / p99 ms | $(lat datapact) | $(lat nginx) | | | |"
    echo "| same, server CPU µs/request (info) | $(cpu_us datapact) | $(cpu_us nginx) | | | |"
    echo "| 1M posts, random two-term queries, one at a time (Python client): p50 / p90 / p99 / max ms | $(pyf p50_ms) / $(pyf p90_ms) / $(pyf p99_ms) / $(pyf max_ms) | | | p99 ≤ 20 ms | $(met_le "$(pyf p99_ms)" 20) |"
    echo "| same queries, wrk -c1: req/s, p50 / p90 / p99 ms | $(rps random-c1); $(pct_ms P50 random-c1) / $(pct_ms P90 random-c1) / $(pct_ms P99 random-c1) | | | p99 ≤ 20 ms | $(met_le "$(pct_ms P99 random-c1)" 20) |"
    echo "| same queries, wrk -c$CONNS (info): req/s, p50 / p99 ms | $(rps random-c64); $(lat random-c64) | | | | |"
    echo "| same queries, server CPU µs/request (c1 / c$CONNS) | $(cpu_us random-c1) / $(cpu_us random-c64) | | | | |"
    echo "| start-up on $STORED posts (to \`datapact listening\`), s | $STARTUP_S_dp (index build ${INDEX_MS:-?} ms) | | | | |"
    echo "| RSS after start, MB (anonymous + file-backed, i.e. SQLite mmap) | $RSS_START ($ANON_START + $FILE_START); peak during start $HWM_START | | | | |"
    echo "| RSS after the load runs, MB | $RSS_END ($ANON_END + $FILE_END); peak $HWM_END | | | | |"
    echo
    echo "python client (measured pass): $(cat "$WORK/latency.out")"
    echo "python client (warm-up pass):  $(cat "$WORK/latency-warmup.out")"
    echo "slowest queries (ms, results, bytes, query):"
    sort -rn "$WORK/latency.tsv" | sed -n "1,5s/^/  /p"
    if ((EXAMPLE)); then
        echo "in-process example (cargo run --release -p datapact-search --example latency 1000000 2000):"
        sed 's/^/  /' "$WORK/example.out"
    fi
    echo "CPU busy (all processes) just before each phase: ${QUIET_NOTE%, }"
} | tee "$WORK/results.md"
log "results also in $WORK/results.md; raw wrk output in $WORK/wrk-*.out"
