#!/usr/bin/env bash
# datapact benchmark (issue 2, item 10). Builds release binaries, prepares the data, runs:
#   1. ingest posts/s: `datapact ingest` vs a plain SQLite bulk insert of the same rows
#      (crates/datapact-store/examples/bulk_insert_baseline.rs);
#   2. GET /2/tweets/:id requests/s: `datapact serve` vs nginx serving the same response bytes
#      as static files, both driven by wrk rotating over the same ids;
# and prints a table. Re-runnable: everything lives in $BENCH_WORK and is rebuilt each run.
# Only talks to 127.0.0.1. Takes about 5 minutes plus the release build.
#
#   bench/run.sh                    # defaults below
#   BENCH_DURATION=30s bench/run.sh # longer load phases
#
# Settings (environment): BENCH_WORK (/tmp/datapact-bench), BENCH_POSTS (200000),
# BENCH_IDS (1000), BENCH_THREADS (2), BENCH_CONNECTIONS (64), BENCH_DURATION (15s),
# BENCH_WARMUP (3s), BENCH_ROUNDS (2: datapact and its baseline alternate, totals reported),
# BENCH_PORT (18080; +1 admin, +10 and +11 nginx), BENCH_EXTRA (1: also a `tweet.fields` +
# `expansions=author_id` lookup, informational), BENCH_QUIET_WAIT (10), CARGO_TARGET_DIR
# (/tmp/target-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
WORK=${BENCH_WORK:-/tmp/datapact-bench}
POSTS=${BENCH_POSTS:-200000}
NIDS=${BENCH_IDS:-1000}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-3s}
PORT=${BENCH_PORT:-18080}
ADMIN_PORT=$((PORT + 1))
NGINX_PORT=$((PORT + 10))
NGINX_PORT2=$((PORT + 11))
EXTRA=${BENCH_EXTRA:-1}
EXTRA_QUERY='?tweet.fields=created_at,author_id,lang,public_metrics&expansions=author_id&user.fields=created_at,public_metrics'

BIN=$CARGO_TARGET_DIR/release/datapact
BASELINE=$CARGO_TARGET_DIR/release/examples/bulk_insert_baseline
SERVER_PID=
NGINX_PID=

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    [[ -n $NGINX_PID ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools -------------------------------------------------------------------------------------
need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v curl >/dev/null || need+=(curl)
[[ -x /usr/bin/time ]] || need+=(time)
if ((${#need[@]})); then
    log "installing ${need[*]} with apt-get"
    SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$ADMIN_PORT" "$NGINX_PORT" "$NGINX_PORT2"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use; set BENCH_PORT"
done

# Waits (up to $BENCH_QUIET_WAIT s, default 10) until the machine is mostly idle, so a concurrent
# build does not skew a phase; records the busy share it measured either way.
cpu_busy_pct() {
    local a b
    read -r _ a1 a2 a3 a4 a5 a6 a7 _ </proc/stat
    sleep 1
    read -r _ b1 b2 b3 b4 b5 b6 b7 _ </proc/stat
    a=$((a1 + a2 + a3 + a5 + a6 + a7)); b=$((b1 + b2 + b3 + b5 + b6 + b7))
    local busy=$((b - a)) idle=$((b4 - a4))
    echo $((100 * busy / (busy + idle + 1)))
}
wait_quiet() {
    local busy tries=0
    while busy=$(cpu_busy_pct); ((busy > 15 && tries < ${BENCH_QUIET_WAIT:-10})); do
        ((tries++ == 0)) && log "machine is ${busy}% busy (another process); waiting for it to settle"
        :
    done
    ((busy > 15)) && log "warning: still ${busy}% busy before '$1'; figures may be low"
    QUIET_NOTE+="$1 ${busy}%, "
}
QUIET_NOTE=

# --- build -------------------------------------------------------------------------------------
log "building release binaries in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --quiet -p datapact &&
    cargo build --release --quiet -p datapact-store --example bulk_insert_baseline)

# --- data --------------------------------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"
CORPUS=$WORK/corpus.jsonl
log "writing the demo corpus ($POSTS posts)"
"$BIN" demo-corpus --posts "$POSTS" --out "$CORPUS" 2>/dev/null
LINES=$(wc -l <"$CORPUS")
CORPUS_MB=$(($(stat -c %s "$CORPUS") / 1000000))
sync

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
per_sec() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; }

# --- 1. ingest ---------------------------------------------------------------------------------
# Each round runs datapact then the baseline, reading the same file (in the page cache after it
# was written) into a fresh database on the same file system. Wall time is around the whole
# process (open, schema, every commit); CPU time (user + sys, from GNU time) is reported too,
# because it is less disturbed by other load on the machine. Rates are totals over all rounds.
ROUNDS=${BENCH_ROUNDS:-2}
DATA=$WORK/data1
# timed NAME CMD...: runs CMD under GNU time, adds its wall and CPU seconds to WALL/CPU[NAME].
declare -A WALL CPU
timed() {
    local name=$1; shift
    /usr/bin/time -f '%e %U %S' -o "$WORK/time.out" "$@"
    read -r w u s <"$WORK/time.out"
    WALL[$name]=$(awk -v a="${WALL[$name]:-0}" -v b="$w" 'BEGIN { print a + b }')
    CPU[$name]=$(awk -v a="${CPU[$name]:-0}" -v u="$u" -v s="$s" 'BEGIN { print a + u + s }')
}
for r in $(seq "$ROUNDS"); do
    sync
    wait_quiet "ingest $r"
    log "round $r/$ROUNDS: datapact ingest"
    timed datapact env DATAPACT_LOG=warn "$BIN" --data-dir "$WORK/data$r" ingest --quiet "$CORPUS" >>"$WORK/ingest.out"
    n=$(sqlite3 "$WORK/data$r/datapact.db" 'SELECT COUNT(*) FROM posts')
    [[ $n -eq $LINES ]] || die "datapact stored $n posts of $LINES lines"
    sync
    wait_quiet "baseline $r"
    log "round $r/$ROUNDS: baseline, plain SQLite bulk insert"
    timed baseline "$BASELINE" "$CORPUS" "$WORK/baseline$r.db" >>"$WORK/baseline.out"
    n=$(sqlite3 "$WORK/baseline$r.db" 'SELECT COUNT(*) FROM posts')
    [[ $n -eq $LINES ]] || die "baseline stored $n posts of $LINES lines"
done
TOTAL_ROWS=$((LINES * ROUNDS))
INGEST_S=$(awk -v w="${WALL[datapact]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f", w / r }')
BASE_S=$(awk -v w="${WALL[baseline]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f", w / r }')
INGEST_RATE=$(per_sec "$TOTAL_ROWS" "${WALL[datapact]}")
BASE_RATE=$(per_sec "$TOTAL_ROWS" "${WALL[baseline]}")
INGEST_CPU_RATE=$(per_sec "$TOTAL_ROWS" "${CPU[datapact]}")
BASE_CPU_RATE=$(per_sec "$TOTAL_ROWS" "${CPU[baseline]}")
DB_MB=$(du -sm "$DATA" | cut -f1)
BASE_DB_MB=$(du -cm "$WORK"/baseline1.db* | tail -1 | cut -f1)

# --- 2. GET /2/tweets/:id ----------------------------------------------------------------------
IDS_FILE=$WORK/ids.txt
# $NIDS ids spread evenly over the whole table (deterministic).
sqlite3 "$DATA/datapact.db" "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
    FROM posts WHERE deleted_at IS NULL) WHERE n % (SELECT MAX(1, COUNT(*) / $NIDS) FROM posts) = 0
    LIMIT $NIDS" >"$IDS_FILE"
[[ $(wc -l <"$IDS_FILE") -eq $NIDS ]] || die "could not pick $NIDS post ids"

# Builds with licensing terms (`datapact apply`) rate-limit the demo licensees; give them the
# bench plan (same per-request policy, limits out of reach) before `serve --demo` starts.
if "$BIN" apply --help >/dev/null 2>&1; then
    log "applying bench/terms.toml"
    DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" apply "$ROOT/bench/terms.toml" >"$WORK/apply.out"
fi

log "starting datapact serve (release) on 127.0.0.1:$PORT"
DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" serve --demo \
    --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER_PID=$!
for _ in $(seq 600); do
    grep -q '^datapact listening' "$WORK/serve.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "datapact serve exited: $(cat "$WORK/serve.err")"
    sleep 0.1
done
grep -q '^datapact listening' "$WORK/serve.out" || die "datapact serve did not start"
KEY=$(awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/serve.out")
[[ -n $KEY ]] || die "no demo key in the serve output"

# The real response bodies, fetched once through one keep-alive curl, become nginx's files.
STATIC=$WORK/static/2/tweets
mkdir -p "$STATIC"
# write_curl_cfg DIR QUERY: a curl config fetching every id (with QUERY) into DIR/ID.
write_curl_cfg() {
    printf 'header = "Authorization: Bearer %s"\n' "$KEY"
    while read -r id; do
        printf 'url = "http://127.0.0.1:%s/2/tweets/%s%s"\noutput = "%s/%s"\n' "$PORT" "$id" "$2" "$1" "$id"
    done <"$IDS_FILE"
}
avg_size() { stat -c %s "$1"/* | awk '{ s += $1 } END { printf "%.0f", s / NR }'; }
write_curl_cfg "$STATIC" "" >"$WORK/curl.cfg"
curl -sS --fail -K "$WORK/curl.cfg"
for id in $(head -3 "$IDS_FILE"); do
    grep -q '"data"' "$STATIC/$id" || die "unexpected body for $id: $(head -c 200 "$STATIC/$id")"
done
BODY_BYTES=$(avg_size "$STATIC")
if ((EXTRA)); then
    EXTRA_STATIC=$WORK/static-extra/2/tweets
    mkdir -p "$EXTRA_STATIC"
    write_curl_cfg "$EXTRA_STATIC" "$EXTRA_QUERY" >"$WORK/curl-extra.cfg"
    curl -sS --fail -K "$WORK/curl-extra.cfg"
    EXTRA_BODY_BYTES=$(avg_size "$EXTRA_STATIC")
fi
chmod -R a+rX "$WORK"

# The nginx baseline: the same bytes as static files, one server per response shape.
WORKERS=$(nproc)
mkdir -p "$WORK/nginx-tmp" "$WORK/static-extra/2/tweets"
sed -e "s|@WORK@|$WORK|g" -e "s|@PORT@|$NGINX_PORT|g" -e "s|@PORT2@|$NGINX_PORT2|g" \
    -e "s|@WORKERS@|$WORKERS|g" "$ROOT/bench/nginx.conf.in" >"$WORK/nginx.conf"
"$NGINX" -t -q -p "$WORK" -c "$WORK/nginx.conf" 2>"$WORK/nginx-t.err" ||
    die "nginx config: $(cat "$WORK/nginx-t.err")"
log "starting nginx ($WORKERS workers) on 127.0.0.1:$NGINX_PORT and :$NGINX_PORT2"
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf" 2>>"$WORK/nginx-error.log" &
NGINX_PID=$!
for _ in $(seq 100); do port_free "$NGINX_PORT" || break; sleep 0.1; done
first=$(head -1 "$IDS_FILE")
curl -sS --fail "http://127.0.0.1:$NGINX_PORT/2/tweets/$first" | cmp -s - "$STATIC/$first" ||
    die "nginx does not serve the datapact bytes for $first"

# CPU ticks (user + sys) used so far by the given processes.
ticks() {
    local total=0 pid
    for pid in "$@"; do
        read -r -a f <"/proc/$pid/stat"
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK)

# run_wrk NAME PORT QUERY PID...: warm-up (first round only), then the measured run. Adds the
# requests, duration, p50, p99 and the CPU ticks the PIDs used to REQ/DUR/P50/P99/TICKS[NAME].
declare -A REQ DUR P50 P99 TICKS
run_wrk() {
    local name=$1 port=$2 query=$3; shift 3
    # The same request paths for datapact and nginx: /2/tweets/ID plus the query, one per line.
    local paths=$WORK/paths-$name.txt
    awk -v query="$query" 'NF { print "/2/tweets/" $0 query }' "$IDS_FILE" >"$paths"
    local wrk_env=(env BENCH_PATHS_FILE="$paths" BENCH_KEY="$KEY")
    if [[ -z ${REQ[$name]:-} ]]; then
        "${wrk_env[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$ROOT/bench/paths.lua" \
            "http://127.0.0.1:$port" >/dev/null
    fi
    wait_quiet "$name"
    log "wrk -t$THREADS -c$CONNS -d$DURATION against $name"
    local t0 t1
    t0=$(ticks "$@")
    "${wrk_env[@]}" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" -s "$ROOT/bench/paths.lua" \
        "http://127.0.0.1:$port" >>"$WORK/wrk-$name.out"
    t1=$(ticks "$@")
    local line field
    line=$(grep '^RESULT' "$WORK/wrk-$name.out" | tail -1) || die "no wrk result for $name"
    field() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<"$line"; }
    (($(field non2xx) == 0)) || die "$name answered $(field non2xx) non-2xx responses"
    local errs=$(($(field connect_err) + $(field read_err) + $(field write_err) + $(field timeouts)))
    ((errs == 0)) || log "warning: $name had $errs socket errors"
    REQ[$name]=$((${REQ[$name]:-0} + $(field requests)))
    DUR[$name]=$((${DUR[$name]:-0} + $(field duration_us)))
    P50[$name]=$((${P50[$name]:-0} + $(field p50_us)))
    P99[$name]=$((${P99[$name]:-0} + $(field p99_us)))
    TICKS[$name]=$((${TICKS[$name]:-0} + t1 - t0))
}

# Datapact and nginx alternate, round by round, so a change in background load hits both.
NGINX_WORKER_PIDS=$(pgrep -P "$NGINX_PID" | tr '\n' ' ')
for r in $(seq "$ROUNDS"); do
    run_wrk datapact "$PORT" "" "$SERVER_PID"
    # shellcheck disable=SC2086
    run_wrk nginx "$NGINX_PORT" "" "$NGINX_PID" $NGINX_WORKER_PIDS
    if ((EXTRA)); then
        run_wrk datapact-fields "$PORT" "$EXTRA_QUERY" "$SERVER_PID"
        # shellcheck disable=SC2086
        run_wrk nginx-fields "$NGINX_PORT2" "$EXTRA_QUERY" "$NGINX_PID" $NGINX_WORKER_PIDS
    fi
done

# --- report ------------------------------------------------------------------------------------
rps() { awk -v n="${REQ[$1]}" -v d="${DUR[$1]}" 'BEGIN { printf "%.0f", n / (d / 1e6) }'; }
lat() { awk -v a="${P50[$1]}" -v b="${P99[$1]}" -v r="$ROUNDS" 'BEGIN { printf "%.2f / %.2f", a / r / 1000, b / r / 1000 }'; }
cpu_us() { awk -v t="${TICKS[$1]}" -v n="${REQ[$1]}" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }
met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "yes" : "no" }'; }
R_INGEST=$(ratio "$INGEST_RATE" "$BASE_RATE")
R_INGEST_CPU=$(ratio "$INGEST_CPU_RATE" "$BASE_CPU_RATE")
R_HTTP=$(ratio "$(rps datapact)" "$(rps nginx)")
{
    echo "datapact benchmark, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes')"
    echo "machine: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr), $(df -T "$WORK" | awk 'NR == 2 { print $2 }') disk"
    echo "corpus: $LINES posts, $CORPUS_MB MB JSONL; datapact db $DB_MB MB, baseline db $BASE_DB_MB MB; $NIDS ids, response body avg $BODY_BYTES B"
    echo "$ROUNDS rounds, alternating; wrk -t$THREADS -c$CONNS -d$DURATION (after a $WARMUP warm-up), nginx $WORKERS workers"
    echo
    echo "| measure | datapact | baseline | ratio | target | met? |"
    echo "|---|---|---|---|---|---|"
    echo "| ingest, posts/s (wall) | $INGEST_RATE ($INGEST_S s) | $BASE_RATE ($BASE_S s), plain SQLite insert | $R_INGEST | ≥ 0.5 | $(met "$R_INGEST" 0.5) |"
    echo "| ingest, posts per CPU-second (info) | $INGEST_CPU_RATE | $BASE_CPU_RATE | $R_INGEST_CPU | – | – |"
    echo "| GET /2/tweets/:id, req/s | $(rps datapact) | $(rps nginx), nginx static file | $R_HTTP | ≥ 0.5 | $(met "$R_HTTP" 0.5) |"
    echo "| GET /2/tweets/:id, p50 / p99 ms | $(lat datapact) | $(lat nginx) | | | |"
    echo "| GET /2/tweets/:id, server CPU µs/request (info) | $(cpu_us datapact) | $(cpu_us nginx) | | | |"
    if ((EXTRA)); then
        echo "| GET /2/tweets/:id?tweet.fields=…&expansions=author_id, req/s (info, body avg $EXTRA_BODY_BYTES B) | $(rps datapact-fields) | $(rps nginx-fields) | $(ratio "$(rps datapact-fields)" "$(rps nginx-fields)") | – | – |"
        echo "| same, p50 / p99 ms | $(lat datapact-fields) | $(lat nginx-fields) | | | |"
        echo "| same, server CPU µs/request (info) | $(cpu_us datapact-fields) | $(cpu_us nginx-fields) | | | |"
    fi
    echo
    echo "datapact ingest said:"; sed 's/^/  /' "$WORK/ingest.out"
    echo "baseline said:"; sed 's/^/  /' "$WORK/baseline.out"
    echo "CPU busy (other processes) just before each phase: ${QUIET_NOTE%, }"
} | tee "$WORK/results.md"
log "results also in $WORK/results.md; raw wrk output in $WORK/wrk-*.out"
