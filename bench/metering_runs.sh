# One measured run of a datapact build on bench/metering.sh's store, for bench/metering_ab.sh and
# bench/metering_floor.sh (sourced, not run). A run: a fresh ledger, `serve` alone, a 2 s warm-up,
# then `wrk -t2 -c64 -d$BENCH_DURATION` of one load (bench/metering.sh's lookup or search paths).
# It prints one table row: requests/s, p99, the server's CPU per request, the ledger writer
# thread's CPU per request (from /proc/PID/task; "-" when the build runs without one) and the
# group commit's mean rows per batch over the measured window (from /metrics), and the share of the
# machine's CPU time left idle or waiting on I/O meanwhile (from /proc/stat): a metered run that
# leaves CPUs idle is held back by waiting (on the ledger's fsync), not by CPU.
# With BENCH_PIN=1 the gateway (every thread) runs on CPU 0 and wrk on CPU 1, as if the load came
# from another machine, and the idle share is CPU 0's: the gateway's CPU per request then decides
# its requests/s, without wrk's share of the CPUs in the way (BENCHMARKS.md, "The load generator
# on a core of its own").
# Expects ROOT to be set; reads BENCH_WORK, BENCH_POSTS, BENCH_PORT, BENCH_DURATION, BENCH_PIN.

WORK=${BENCH_WORK:-/tmp/datapact-metering}
DATA=$WORK/data-${BENCH_POSTS:-200000}
PORT=${BENCH_PORT:-18480}
[[ -f $DATA/ingested && -s $WORK/paths-search.txt && -s $WORK/serve-metered.out ]] ||
    { echo "run bench/metering.sh first: no store, paths or key in $WORK" >&2; exit 1; }
BENCH_KEY=$(awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/serve-metered.out")
export BENCH_KEY
HZ=$(getconf CLK_TCK)

METERING_RUN_HEADER="| round | load | build | req/s | p99 ms | CPU µs/request | writer µs/request | rows per batch | CPU idle % |
|---|---|---|---|---|---|---|---|---|"

ticks() { awk '{ print $14 + $15 }' "$1"; }

# cpu_times: the idle plus I/O wait time and the total of the machine (of CPU 0, the gateway's,
# when pinned), in ticks ("IDLE TOTAL").
cpu_times() {
    awk -v cpu="$([[ -n ${BENCH_PIN:-} ]] && echo cpu0 || echo cpu)" \
        '$1 == cpu { t = 0; for (i = 2; i <= 9; i++) t += $i; print $5 + $6, t; exit }' /proc/stat
}
# With BENCH_PIN, the commands that start the gateway and wrk (taskset execs them, so $! is still
# the gateway's pid).
ON_CPU0=() ON_CPU1=()
[[ -n ${BENCH_PIN:-} ]] && ON_CPU0=(taskset -c 0) ON_CPU1=(taskset -c 1)

# delta_ratio BEFORE AFTER SCALE: two "X Y" readings of counters taken before and after the measured
# window; prints SCALE * (change in X) / (change in Y) to one decimal, or "-" when Y did not change.
delta_ratio() {
    awk -v scale="$3" '{ x[NR] = $1; y[NR] = $2 }
        END { if (y[2] > y[1]) printf "%.1f", scale * (x[2] - x[1]) / (y[2] - y[1]); else print "-" }' <<<"$1
$2"
}

# batch_rows: the group commit's rows and batches so far ("SUM COUNT", from /metrics), so a
# run's mean batch is taken over its measured window only.
batch_rows() {
    curl -sS --fail -H "Authorization: Bearer $(cat "$DATA/admin-token")" "http://127.0.0.1:$((PORT + 1))/metrics" |
        awk '/^datapact_ledger_batch_rows_sum/ { s = $NF } /^datapact_ledger_batch_rows_count/ { c = $NF }
            END { printf "%s %s\n", s + 0, c + 0 }'
}

# metering_run ROUND LOAD NAME BIN [VAR=VALUE ...] [-- SERVE FLAGS ...]
metering_run() {
    local round=$1 load=$2 name=$3 bin=$4
    shift 4
    local environment=() flags=()
    while (($#)) && [[ $1 != -- ]]; do environment+=("$1"); shift; done
    (($#)) && shift
    flags=("$@")
    rm -f "$DATA"/ledger.db* "$DATA"/ledger-floor.log
    : >"$WORK/run-serve.out"
    # A floor only where the caller asks for one, never inherited from the shell.
    "${ON_CPU0[@]}" env -u DATAPACT_LEDGER_FLOOR "${environment[@]}" DATAPACT_LOG=warn "$bin" --data-dir "$DATA" serve "${flags[@]}" \
        --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$((PORT + 1))" >"$WORK/run-serve.out" 2>"$WORK/run-serve.err" &
    local pid=$!
    # Whatever fails below (set -e), the server does not outlive the run.
    # shellcheck disable=SC2064 # the pid is fixed now
    trap "kill $pid 2>/dev/null" EXIT
    for _ in $(seq 1200); do grep -q '^datapact listening' "$WORK/run-serve.out" && break; sleep 0.1; done
    grep -q '^datapact listening' "$WORK/run-serve.out" ||
        { echo "$name did not start: $(tail -3 "$WORK/run-serve.err")" >&2; exit 1; }
    local writer
    writer=$(grep -l '^ledger-writer$' /proc/"$pid"/task/*/comm 2>/dev/null | head -1) || true
    [[ -n $writer ]] && writer=${writer%/comm}/stat
    export BENCH_PATHS_FILE=$WORK/paths-$load.txt
    "${ON_CPU1[@]}" wrk -t2 -c64 -d2s -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" >/dev/null
    local t0 t1 w0=0 w1=0 result before after idle0 idle1
    before=$(batch_rows)
    idle0=$(cpu_times)
    t0=$(ticks "/proc/$pid/stat")
    [[ -n $writer ]] && w0=$(ticks "$writer")
    result=$("${ON_CPU1[@]}" wrk -t2 -c64 -d"${BENCH_DURATION:-8s}" -s "$ROOT/bench/paths.lua" "http://127.0.0.1:$PORT" | grep RESULT)
    t1=$(ticks "/proc/$pid/stat")
    [[ -n $writer ]] && w1=$(ticks "$writer")
    idle1=$(cpu_times)
    after=$(batch_rows)
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    awk -v r="$round" -v l="$load" -v n="$name" -v hz="$HZ" -v cpu=$((t1 - t0)) -v w=$((w1 - w0)) -v writer="$writer" \
        -v req="$(sed 's/.* requests=\([0-9]*\).*/\1/' <<<"$result")" \
        -v rps="$(sed 's/.* rps=\([0-9.]*\).*/\1/' <<<"$result")" -v p99="$(sed 's/.* p99_us=\([0-9]*\).*/\1/' <<<"$result")" \
        -v rows="$(delta_ratio "$before" "$after" 1)" -v idle="$(delta_ratio "$idle0" "$idle1" 100)" \
        'BEGIN { printf "| %d | %s | %s | %.0f | %.2f | %.1f | %s | %s | %s |\n", r, l, n, rps, p99 / 1000, 1e6 * cpu / hz / req,
            writer == "" ? "-" : sprintf("%.1f", 1e6 * w / hz / req), rows, idle }'
}
