#!/usr/bin/env bash
# Store benchmark (issue 9, item 7, the store's part): the same gateway on the embedded SQLite
# store against the shared PostgreSQL store (`--store postgres://…`), same corpus, same terms,
# same requests, each metered by its own ledger (the ledger is per data directory on both).
# Measures requests/s, loaded p50/p99 and server CPU per request for `GET /2/tweets/:id`
# rotating over 1,000 ids and for two-term searches (which run on the gateway's own index, so
# they show what the store costs around them: the key and terms caches, the freshness check).
# Rounds alternate (ABBA) as in bench/ab.sh. PostgreSQL is the machine's (127.0.0.1:5432,
# database test; BENCH_POSTGRES overrides), in a schema of its own, dropped at the end.
#
# Environment (defaults): BENCH_WORK (/tmp/datapact-store), BENCH_POSTS (50000), BENCH_ROUNDS (4),
# BENCH_THREADS (2), BENCH_CONNECTIONS (64), BENCH_DURATION (10s), BENCH_WARMUP (3s),
# BENCH_PORT (18480; also +1 to +3), CARGO_TARGET_DIR (/tmp/target-bench).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
export BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-3}
WORK=${BENCH_WORK:-/tmp/datapact-store}
POSTS=${BENCH_POSTS:-50000}
ROUNDS=${BENCH_ROUNDS:-4}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-10s}
PORT=${BENCH_PORT:-18480}
SERVER=${BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}
SCHEMA=dp_bench_$$
PG_URL="$SERVER?options=-csearch_path%3D$SCHEMA"
BENCH_NAME=store
PY="python3 $ROOT/bench/search_queries.py"

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
cleanup() {
    stop_all
    psql "$SERVER" -q -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_tools
command -v psql >/dev/null || die "psql is needed (Debian's postgresql-client)"
pg_isready -h 127.0.0.1 -p 5432 -t 5 >/dev/null || die "PostgreSQL does not answer on 127.0.0.1:5432"
log "building release binaries in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --quiet -p datapact)
note_build

rm -rf "$WORK" && mkdir -p "$WORK"
CORPUS=$WORK/corpus.jsonl
"$BIN" demo-corpus --posts "$POSTS" --out "$CORPUS" 2>/dev/null
psql "$SERVER" -q -c "CREATE SCHEMA $SCHEMA" >/dev/null
declare -A DATA=([sqlite]=$WORK/data-sqlite [postgres]=$WORK/data-postgres)
declare -A STORE_ARGS=([sqlite]="" [postgres]="--store $PG_URL")
declare -A KEYS INGEST_S
for s in sqlite postgres; do
    # shellcheck disable=SC2086
    dp() { DATAPACT_LOG=warn "$BIN" --data-dir "${DATA[$s]}" ${STORE_ARGS[$s]} "$@"; }
    log "ingesting $POSTS posts into the $s store"
    t0=$(date +%s.%N)
    dp ingest --quiet "$CORPUS" >"$WORK/ingest-$s.out"
    INGEST_S[$s]=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    dp apply "$ROOT/bench/terms.toml" >"$WORK/apply-$s.out"
    KEYS[$s]=$(dp key issue nimbus | tr -d '\n')
done

# 1,000 ids spread over the corpus, and 200 two-term queries from frequent words.
python3 - "$CORPUS" >"$WORK/paths-lookup.txt" <<'PY'
import json, sys
ids = [json.loads(line)["id"] for line in open(sys.argv[1])]
step = max(1, len(ids) // 1000)
for post_id in ids[::step][:1000]:
    print(f"/2/tweets/{post_id}")
PY
$PY words "$CORPUS" 100000 >"$WORK/words.tsv"
$PY queries "$WORK/words.tsv" 200 1000 4 | python3 -c 'import sys, urllib.parse
for line in sys.stdin:
    print("/2/tweets/search/recent?query=" + urllib.parse.quote(line.rstrip("\n"), safe=""))' >"$WORK/paths-search.txt"

declare -A SPORT=([sqlite]=$PORT [postgres]=$((PORT + 2)))
# shellcheck disable=SC2086
start_server sqlite "${DATA[sqlite]}" "$PORT" $((PORT + 1))
# shellcheck disable=SC2086
start_server postgres "${DATA[postgres]}" $((PORT + 2)) $((PORT + 3)) --store "$PG_URL"
declare -A SPID=([sqlite]=$PID_sqlite [postgres]=$PID_postgres)
for s in sqlite postgres; do
    for f in lookup search; do
        curl -sS --fail -o "$WORK/body-$s-$f.json" -H "Authorization: Bearer ${KEYS[$s]}" \
            "http://127.0.0.1:${SPORT[$s]}$(head -1 "$WORK/paths-$f.txt")"
    done
done
# The same answers once typography is folded (each store's ring fingerprints its own copies).
for f in lookup search; do
    cmp -s <(python3 "$ROOT/bench/fold_typography.py" <"$WORK/body-sqlite-$f.json") \
        <(python3 "$ROOT/bench/fold_typography.py" <"$WORK/body-postgres-$f.json") ||
        die "the two stores answer different $f requests"
done

for r in $(seq "$ROUNDS"); do
    order=(sqlite postgres)
    ((r % 2 == 0)) && order=(postgres sqlite)
    log "round $r/$ROUNDS: ${order[*]}"
    for f in lookup search; do
        for s in "${order[@]}"; do
            KEY=${KEYS[$s]} run_wrk "$f-$s" "${SPORT[$s]}" "$WORK/paths-$f.txt" "$THREADS" "$CONNS" "$DURATION" "${SPID[$s]}"
        done
    done
done

{
    bench_header "datapact store benchmark (issue 9): SQLite against PostgreSQL"
    echo "corpus: $POSTS demo posts; ingest took ${INGEST_S[sqlite]} s into SQLite, ${INGEST_S[postgres]} s into PostgreSQL ($(ratio "${INGEST_S[postgres]}" "${INGEST_S[sqlite]}")x)"
    echo "wrk -t$THREADS -c$CONNS, $ROUNDS rounds of $DURATION each, alternating; machine busy before runs: ${QUIET_NOTE%, }"
    echo
    echo "| measure | SQLite store | PostgreSQL store | PostgreSQL / SQLite |"
    echo "|---|---|---|---|"
    for f in lookup search; do
        echo "| $f requests/s | $(fmt_int "$(rps "$f-sqlite")") | $(fmt_int "$(rps "$f-postgres")") | $(ratio "$(rps "$f-postgres")" "$(rps "$f-sqlite")") |"
        echo "| $f p50 / p99 ms | $(lat "$f-sqlite") | $(lat "$f-postgres") | |"
        echo "| $f server CPU µs/request | $(cpu_us "$f-sqlite") | $(cpu_us "$f-postgres") | $(ratio "$(cpu_us "$f-postgres")" "$(cpu_us "$f-sqlite")") |"
    done
} | tee "$WORK/report.md"
