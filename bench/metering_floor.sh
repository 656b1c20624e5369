#!/usr/bin/env bash
# Where metering's cost goes (issue 5): one build with the `ledger-floor` feature, run six ways
# in alternating rounds on bench/metering.sh's store (each run as bench/metering_runs.sh says):
#   unmetered  `serve --unmetered`: no ledger at all (bench/metering.sh's baseline);
#   null       every response reserved, sealed onto the chain and handed to the writer thread,
#              which stores nothing and answers at once (DATAPACT_LEDGER_FLOOR=null);
#   log        null, plus each batch written with one pwrite to a preallocated file and one
#              fdatasync: the least a ledger that flushes once per batch can cost on this disk
#              (DATAPACT_LEDGER_FLOOR=log);
#   null-task  null without the hand-off: a task on the gateway's runtime seals and answers
#              (DATAPACT_LEDGER_FLOOR=null-task);
#   log-uring  log without the hand-off: the task writes each batch and has io_uring flush it,
#              awaiting the completion on the runtime's reactor (DATAPACT_LEDGER_FLOOR=log-uring);
#   metered    the ledger as shipped (SQLite, synchronous=FULL).
# FLOORS picks the floors run between unmetered and metered (also `log-uring-2`: up to two
# flushes in flight).
# The floors do NOT meter; they exist to bound what any ledger design could save
# (crates/datapact-store/src/ledger/floor.rs). Then the mean of each, against unmetered.
#
# Usage: bench/metering_floor.sh (run bench/metering.sh once first)
# Environment (defaults): CARGO_TARGET_DIR (target), BENCH_WORK (/tmp/datapact-metering),
# BENCH_POSTS (200000), ROUNDS (3), BENCH_DURATION (8s), BENCH_PORT (18480; also uses +1),
# FLOORS ("null log null-task log-uring").
# The floor build goes to $CARGO_TARGET_DIR/ledger-floor and is copied to $BENCH_WORK/datapact-floor.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/metering_runs.sh
source "$ROOT/bench/metering_runs.sh"
# A target directory of its own: the floor build must never be left where a plain release build
# is expected. Absolute, so cargo (run in $ROOT) and cp agree on it.
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-$ROOT/target}")/ledger-floor
echo "building the floor build (cargo build --release -p datapact --features ledger-floor, in $TARGET)" >&2
(cd "$ROOT" && cargo build --release --quiet -p datapact --features ledger-floor --target-dir "$TARGET")
BIN=$WORK/datapact-floor
cp "$TARGET/release/datapact" "$BIN"

# variant NAME ROUND LOAD
variant() {
    case $1 in
        unmetered) metering_run "$2" "$3" "$1" "$BIN" -- --unmetered ;;
        null | log | null-task | log-uring | log-uring-2) metering_run "$2" "$3" "$1" "$BIN" DATAPACT_LEDGER_FLOOR="$1" ;;
        metered) metering_run "$2" "$3" "$1" "$BIN" ;;
    esac
}

# shellcheck disable=SC2206 # a list of names
builds=(unmetered ${FLOORS:-null log null-task log-uring} metered)
ROWS=$WORK/floor-rows.md
echo "$METERING_RUN_HEADER" | tee "$ROWS"
for round in $(seq "${ROUNDS:-3}"); do
    for load in lookup search; do
        order=("${builds[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#builds[@]} - 1; i >= 0; i--)); do order+=("${builds[i]}"); done
        fi
        for name in "${order[@]}"; do
            variant "$name" "$round" "$load" | tee -a "$ROWS"
        done
    done
done
echo
echo "| load | build | req/s (mean) | vs unmetered | p99 ms (mean) | CPU µs/request (mean) |"
echo "|---|---|---|---|---|---|"
awk -F' *\\| *' -v names="${builds[*]}" 'NR > 2 { key = $3 " " $4; n[key]++; rps[key] += $5; p99[key] += $6; cpu[key] += $7 }
    END {
        split("lookup search", loads, " "); count = split(names, builds, " ")
        for (l = 1; l <= 2; l++) for (b = 1; b <= count; b++) {
            key = loads[l] " " builds[b]; base = loads[l] " unmetered"
            if (!n[key]) continue
            printf "| %s | %s | %.0f | %.1f %% fewer | %.2f | %.1f |\n", loads[l], builds[b], rps[key] / n[key],
                100 * (1 - (rps[key] / n[key]) / (rps[base] / n[base])), p99[key] / n[key], cpu[key] / n[key]
        }
    }' "$ROWS"
