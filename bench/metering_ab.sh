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
: "${BASE_BIN:?set BASE_BIN to the build to compare against}" "${NEW_BIN:?set NEW_BIN to the build under test}"
# shellcheck source=bench/metering_runs.sh
source "$ROOT/bench/metering_runs.sh"
# shellcheck disable=SC2206
serve_flags=(${BENCH_SERVE_ARGS:-})
echo "$METERING_RUN_HEADER"
for round in $(seq "${ROUNDS:-3}"); do
    for load in lookup search; do
        builds=(base new)
        ((round % 2 == 0)) && builds=(new base)
        for name in "${builds[@]}"; do
            bin=$BASE_BIN
            [[ $name == new ]] && bin=$NEW_BIN
            metering_run "$round" "$load" "$name" "$bin" -- "${serve_flags[@]}"
        done
    done
done
