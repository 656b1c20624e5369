# Shared by bench/search.sh and bench/terms.sh (sourced, not run). Same conventions as
# bench/run.sh: release build in $CARGO_TARGET_DIR, 127.0.0.1 only, waits for the machine to
# settle before each phase and records how busy it was, server CPU from /proc/PID/stat.
# Expects ROOT, WORK and CARGO_TARGET_DIR to be set by the caller.

BIN=$CARGO_TARGET_DIR/release/datapact
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[%s %s] %s\n' "${BENCH_NAME:-bench}" "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_tools() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx-light)
    command -v wrk >/dev/null || need+=(wrk)
    command -v sqlite3 >/dev/null || need+=(sqlite3)
    command -v curl >/dev/null || need+=(curl)
    command -v python3 >/dev/null || need+=(python3)
    [[ -x /usr/bin/time ]] || need+=(time)
    if ((${#need[@]})); then
        log "installing ${need[*]} with apt-get"
        local sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    NGINX=$(command -v nginx || echo /usr/sbin/nginx)
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Share of the last second the CPUs were busy (all processes), in percent.
cpu_busy_pct() {
    local a b
    read -r _ a1 a2 a3 a4 a5 a6 a7 _ </proc/stat
    sleep 1
    read -r _ b1 b2 b3 b4 b5 b6 b7 _ </proc/stat
    a=$((a1 + a2 + a3 + a5 + a6 + a7)); b=$((b1 + b2 + b3 + b5 + b6 + b7))
    local busy=$((b - a)) idle=$((b4 - a4))
    echo $((100 * busy / (busy + idle + 1)))
}
# wait_quiet PHASE: waits up to $BENCH_QUIET_WAIT s (default 10) for the machine to be mostly
# idle; records the busy share it measured (and the 1-minute load average) either way.
QUIET_NOTE=
wait_quiet() {
    local busy tries=0
    while busy=$(cpu_busy_pct); ((busy > 15 && tries < ${BENCH_QUIET_WAIT:-10})); do
        ((tries++ == 0)) && log "machine is ${busy}% busy (another process); waiting for it to settle"
        :
    done
    ((busy > 15)) && log "warning: still ${busy}% busy before '$1'; figures may be low"
    QUIET_NOTE+="$1 ${busy}% (load $(cut -d' ' -f1 /proc/loadavg)), "
}

# CPU ticks (user + sys) used so far by the given processes.
ticks() {
    local total=0 pid
    for pid in "$@"; do
        read -r -a f <"/proc/$pid/stat"
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}
rss_mb() { awk -v k="${2:-VmRSS:}" '$1 == k { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# start_server NAME DATA PORT ADMIN_PORT ARGS...: starts `datapact serve ARGS` in the
# background; waits for `datapact listening`. Sets PID_<NAME> and STARTUP_S_<NAME> (seconds
# from exec to the listening line). Output goes to $WORK/serve-NAME.{out,err}.
SERVER_PIDS=()
start_server() {
    local name=$1 data=$2 port=$3 admin=$4; shift 4
    port_free "$port" || die "port $port on 127.0.0.1 is in use; set BENCH_PORT"
    port_free "$admin" || die "port $admin on 127.0.0.1 is in use; set BENCH_PORT"
    local t0 pid
    t0=$(date +%s.%N)
    DATAPACT_LOG=${BENCH_SERVE_LOG:-warn} "$BIN" --data-dir "$data" serve "$@" \
        --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        >"$WORK/serve-$name.out" 2>"$WORK/serve-$name.err" &
    pid=$!
    SERVER_PIDS+=("$pid")
    for _ in $(seq 6000); do
        grep -q '^datapact listening' "$WORK/serve-$name.out" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || die "datapact serve ($name) exited: $(tail -5 "$WORK/serve-$name.err")"
        sleep 0.05
    done
    grep -q '^datapact listening' "$WORK/serve-$name.out" || die "datapact serve ($name) did not start"
    printf -v "PID_$name" '%s' "$pid"
    printf -v "STARTUP_S_$name" '%s' "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
}
demo_key() { awk '$1 == "nimbus" && $2 ~ /^dpk_/ { print $2; exit }' "$WORK/serve-$1.out"; }

NGINX_PID=
stop_all() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    [[ -n $NGINX_PID ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
    return 0
}

# run_wrk NAME PORT PATHS THREADS CONNS DURATION PID...: a warm-up the first time NAME is
# measured, then the measured run of bench/paths.lua over the request paths in file PATHS. Adds
# requests, duration, p50, p90, p99 and the CPU ticks the PIDs used to REQ/DUR/P50/P90/P99/TICKS
# [NAME] and counts the run in RUNS[NAME]; raw output is appended to $WORK/wrk-NAME.out.
declare -A REQ DUR P50 P90 P99 TICKS RUNS BYTES
run_wrk() {
    local name=$1 port=$2 paths=$3 threads=$4 conns=$5 duration=$6; shift 6
    local wrk_env=(env BENCH_PATHS_FILE="$paths" BENCH_KEY="${KEY:-}")
    if [[ -z ${REQ[$name]:-} ]]; then
        "${wrk_env[@]}" wrk -t"$threads" -c"$conns" -d"${WARMUP:-3s}" -s "$ROOT/bench/paths.lua" \
            "http://127.0.0.1:$port" >/dev/null
    fi
    wait_quiet "$name"
    log "wrk -t$threads -c$conns -d$duration against $name"
    local t0 t1
    t0=$(ticks "$@")
    "${wrk_env[@]}" wrk -t"$threads" -c"$conns" -d"$duration" --latency -s "$ROOT/bench/paths.lua" \
        "http://127.0.0.1:$port" >>"$WORK/wrk-$name.out"
    t1=$(ticks "$@")
    local line
    line=$(grep '^RESULT' "$WORK/wrk-$name.out" | tail -1) || die "no wrk result for $name"
    field() { sed "s/.* $1=\([0-9.]*\).*/\1/" <<<"$line"; }
    (($(field non2xx) == 0)) || die "$name answered $(field non2xx) non-2xx responses"
    local errs=$(($(field connect_err) + $(field read_err) + $(field write_err) + $(field timeouts)))
    ((errs == 0)) || log "warning: $name had $errs socket errors"
    REQ[$name]=$((${REQ[$name]:-0} + $(field requests)))
    DUR[$name]=$((${DUR[$name]:-0} + $(field duration_us)))
    P50[$name]=$((${P50[$name]:-0} + $(field p50_us)))
    P90[$name]=$((${P90[$name]:-0} + $(field p90_us)))
    P99[$name]=$((${P99[$name]:-0} + $(field p99_us)))
    BYTES[$name]=$((${BYTES[$name]:-0} + $(field bytes)))
    TICKS[$name]=$((${TICKS[$name]:-0} + t1 - t0))
    RUNS[$name]=$((${RUNS[$name]:-0} + 1))
}

# Report helpers over the run_wrk totals: requests/s over all runs, mean of the runs' percentiles.
rps() { awk -v n="${REQ[$1]}" -v d="${DUR[$1]}" 'BEGIN { printf "%.0f", n / (d / 1e6) }'; }
pct_ms() { local -n arr=$1; awk -v a="${arr[$2]}" -v r="${RUNS[$2]}" 'BEGIN { printf "%.2f", a / r / 1000 }'; }
lat() { echo "$(pct_ms P50 "$1") / $(pct_ms P99 "$1")"; }
cpu_us() { awk -v t="${TICKS[$1]}" -v n="${REQ[$1]}" -v hz="$CLK_TCK" 'BEGIN { printf "%.0f", t / hz * 1e6 / n }'; }
avg_body() { awk -v b="${BYTES[$1]}" -v n="${REQ[$1]}" 'BEGIN { printf "%.0f", b / n }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
fmt_int() { printf "%'d" "$1"; }

# Call right after the build: the commit (and whether crates/ had uncommitted changes) the
# binaries were built from; other sessions may commit while a benchmark runs.
BUILD_REV=
note_build() {
    BUILD_REV="$(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD -- crates 2>/dev/null || echo ' + uncommitted changes') (built $(date -u +%H:%M:%S) UTC)"
}
bench_header() {
    echo "$1, $(date -u +%Y-%m-%dT%H:%M:%SZ), commit ${BUILD_REV:-?}"
    echo "machine: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(awk '/MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo) RAM, $(uname -sr)"
}
