#!/usr/bin/env bash
# Metering benchmark (issue 5, item 8, HTTP part): `serve` (every response metered: a ledger
# reservation, the usage event and one delivery row per post group-committed with
# synchronous=FULL before the body is sent) against `serve --unmetered` (the hidden benchmark
# flag: no ledger). Targets: metered serves <= 15 % fewer requests/s, and adds at most
# 1 ms + the disk's fsync p99 at p99 (the fsync p99 is measured here, on the data dir's disk).
# Also reported: the group commit's batch sizes under this load (from the metered gateway's
# /metrics). The ledger's own throughput against SQLite is crates/datapact-store/examples/ledger_bench.rs.
# Usage and environment: see bench/ab.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AB_NAME=metering AB_A=metered AB_B=unmetered AB_B_FLAG=--unmetered AB_B_SAYS='NOT metered'
AB_TITLE="datapact metering benchmark (issue 5)" AB_PORT=18380 AB_RPS_TARGET=15

# fsync p99 of a 4 KiB append on the data dir's filesystem (1,000 samples), in ms.
FSYNC_P99=$(python3 - "${BENCH_WORK:-/tmp/datapact-metering}" <<'PY'
import os, sys, time
os.makedirs(sys.argv[1], exist_ok=True)
path = os.path.join(sys.argv[1], "fsync-probe")
samples = []
with open(path, "ab") as f:
    for _ in range(1000):
        f.write(b"x" * 4096)
        f.flush()
        t = time.perf_counter()
        os.fsync(f.fileno())
        samples.append(time.perf_counter() - t)
os.remove(path)
samples.sort()
print(f"{samples[int(len(samples) * 0.99)] * 1000:.2f}")
PY
)
AB_P99_TARGET=$(awk -v f="$FSYNC_P99" 'BEGIN { printf "%.2f", 1 + f }')

ab_check_a() {
    [[ -f $DATA/ledger.db ]] || die "the metered gateway has no ledger"
}
ab_after_rounds() {
    TOKEN=$(cat "$DATA/admin-token")
    curl -sS --fail -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$((PORT + 1))/metrics" >"$WORK/metrics-metered.txt"
    DATAPACT_LOG=warn "$BIN" --data-dir "$DATA" ledger verify >"$WORK/verify.out" 2>&1 || die "the ledger does not verify: $(cat "$WORK/verify.out")"
}
ab_report() {
    echo "fsync p99 on this disk (4 KiB appends): $FSYNC_P99 ms, so the p99 target is 1 ms + that = $AB_P99_TARGET ms"
    echo "ledger after the run: $(head -1 "$WORK/verify.out")"
    echo
    echo "group commit batch sizes over the whole run (rows per batch; a response is 1 usage event + its posts):"
    echo
    echo '| rows per batch ≤ | batches |'
    echo '|---|---|'
    awk '/^datapact_ledger_batch_rows_bucket/ { match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5); n = $NF
        printf "| %s | %d |\n", le, n - prev; prev = n }' "$WORK/metrics-metered.txt"
    awk '/^datapact_ledger_batch_rows_sum/ { s = $NF } /^datapact_ledger_batch_rows_count/ { c = $NF }
        END { if (c) printf "\nbatches %d, mean %.1f rows per batch\n", c, s / c }' "$WORK/metrics-metered.txt"
    awk '/^datapact_ledger_commit_seconds_sum/ { s = $NF } /^datapact_ledger_commit_seconds_count/ { c = $NF }
        END { if (c) printf "mean commit (seal + write + fsync) %.2f ms\n", 1000 * s / c }' "$WORK/metrics-metered.txt"
}
# shellcheck source=bench/ab.sh
source "$ROOT/bench/ab.sh"
