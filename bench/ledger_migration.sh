#!/usr/bin/env bash
# What upgrading a large ledger to migration 5 costs (README, "Upgrading"): builds a version-4
# ledger.db from the shipped migrations 1-4 with the sqlite3 CLI, filled with a search-like load
# (batches of 14 responses, each a usage event followed by 6 deliveries; the rows' digests are
# random, so the ledger migrates but does not verify), then opens it with the release datapact
# (`datapact usage`, which migrates like the gateway's start does) and reports the migration's
# time, the peak size of ledger.db plus its WAL (sampled every 0.5 s) and the file's size after.
#
# Usage: bench/ledger_migration.sh [BATCHES] (default 120000: 10,080,000 deliveries, about 1.5 GB)
# Environment (defaults): CARGO_TARGET_DIR (/tmp/target-bench), BENCH_WORK (/tmp/datapact-migration).
# Needs sqlite3 (apt-get install sqlite3) and free disk of about three times the ledger.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BATCHES=${1:-120000}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
WORK=${BENCH_WORK:-/tmp/datapact-migration}
MIGRATIONS=$ROOT/crates/datapact-store/src/ledger
command -v sqlite3 >/dev/null || { echo "needs the sqlite3 CLI: apt-get install -y sqlite3" >&2; exit 1; }
(cd "$ROOT" && cargo build --release --quiet -p datapact)
BIN=$CARGO_TARGET_DIR/release/datapact

rm -rf "$WORK" && mkdir -p "$WORK/data"
LEDGER=$WORK/data/ledger.db
echo "building a version-4 ledger of $BATCHES batches ($((BATCHES * 84)) deliveries)" >&2
{
    echo "PRAGMA journal_mode = WAL; PRAGMA synchronous = OFF;"
    for version in 1 2 3 4; do
        echo "BEGIN;"
        cat "$MIGRATIONS"/000"$version"_*.sql
        echo "PRAGMA user_version = $version; COMMIT;"
    done
    cat <<SQL
BEGIN;
INSERT INTO ledger_batches (chain, seq, prev_hash, rows_hash, row_count, committed_at, hash)
SELECT 'sqlite', value, randomblob(32), randomblob(32), 98, 1767225600000 + value * 10, randomblob(32)
FROM generate_series(1, $BATCHES);
INSERT INTO usage_events
SELECT 'sqlite', b.value, e.value * 7, 1 + (b.value * 14 + e.value) % 20, 'dpk_abcdef', 'search_recent', 'training',
       printf('req-%016x%016x', b.value, e.value), NULL, 1767225600000 + b.value * 10, 6, 6, 0, 4096,
       randomblob(32), 0
FROM generate_series(1, $BATCHES) b, generate_series(0, 13) e;
INSERT INTO deliveries
SELECT 'sqlite', b.value, e.value * 7 + d.value, 1 + (b.value * 14 + e.value) % 20,
       printf('req-%016x%016x', b.value, e.value), 1000000 + (b.value * 84 + e.value * 6 + d.value) % 5000000, 1,
       1767225600000 + b.value * 10, 1, randomblob(32)
FROM generate_series(1, $BATCHES) b, generate_series(0, 13) e, generate_series(1, 6) d;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
} | sqlite3 "$LEDGER" >/dev/null
before=$(stat -c %s "$LEDGER")
sync

# Peak size of the ledger and its WAL while the migration runs.
(while :; do
    { stat -c %s "$LEDGER" "$LEDGER"-wal 2>/dev/null || true; } | awk '{ s += $1 } END { print s }'
    sleep 0.5
done) >"$WORK/sizes" &
sampler=$!
trap 'kill $sampler 2>/dev/null' EXIT
start=$(date +%s.%N)
DATAPACT_LOG=info "$BIN" --data-dir "$WORK/data" usage >"$WORK/usage.out" 2>"$WORK/usage.err" ||
    { echo "datapact could not open the ledger: $(tail -3 "$WORK/usage.err")" >&2; exit 1; }
end=$(date +%s.%N)
kill $sampler
after=$(stat -c %s "$LEDGER")
peak=$(sort -n "$WORK/sizes" | tail -1)
deliveries=$(sqlite3 "$LEDGER" "PRAGMA user_version; SELECT count(*) FROM deliveries" | tr '\n' ' ')
echo "ledger after: schema version and deliveries: $deliveries"
awk -v b="$before" -v a="$after" -v p="${peak:-0}" -v s="$start" -v e="$end" -v n=$((BATCHES * 84)) 'BEGIN {
    printf "| deliveries | ledger before | datapact usage (migration 5 and the query) | per million deliveries | peak ledger + WAL | ledger after |\n"
    printf "|---|---|---|---|---|---|\n"
    printf "| %d | %.2f GB | %.1f s | %.2f s | %.2f GB (%.2f×) | %.2f GB (%.2f×) |\n", n, b / 1e9, e - s, (e - s) / (n / 1e6),
        p / 1e9, p / b, a / 1e9, a / b }'
grep -o 'applied ledger migration.*' "$WORK/usage.err" | sed 's/\x1b\[[0-9;]*m//g'
