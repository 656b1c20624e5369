#!/usr/bin/env bash
# Trace benchmark (issue 7, item 5): leak-tracing throughput with 1,000 licensees and 1,000
# canary strings, against `rg -F -f canaries.txt` over the same file in the same run (target:
# trace throughput >= 1.0x rg's). Conventions of bench/run.sh: release build, waits for the
# machine to settle before each timed phase and records how busy it was, alternating rounds.
#
# The leak is BENCH_POSTS demo posts (`datapact-demo`, the corpus `datapact demo-corpus`
# writes) as one licensee's fingerprinted copies, in the X shape (JSON Lines, each post with
# its author, metrics and dates), with BENCH_PLANTED canary lines of that licensee mixed in.
# The engine runs through the trace crate's `trace_bench` example, which builds the same
# corpus in memory (`datapact trace` reads it from the store) and calls the same `Tracer` the
# command uses; it reports the corpus build and the trace of the leak separately. rg scans the
# raw bytes; the trace scans a JSON line's decoded text fields for canaries (where a post's
# text is) besides parsing, matching and reading every line.
#
#  - throughput ratio = rg's time / trace's time over the leak (matching, fingerprint reading,
#    staged accusation over 1,000 candidates, canary scan, report);
#  - end-to-end ratio = rg's time / (corpus build + trace).
#
# Usage: bench/trace.sh. Environment (defaults): BENCH_WORK (/tmp/datapact-trace), BENCH_POSTS
# (1000000), BENCH_LICENSEES (1000), BENCH_CANARIES (1000), BENCH_PLANTED (10), BENCH_REUSE (1:
# keep the leak of an earlier run with the same BENCH_POSTS), BENCH_ROUNDS (2),
# BENCH_QUIET_WAIT (10), CARGO_TARGET_DIR (/tmp/target-bench).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/target-bench}
WORK=${BENCH_WORK:-/tmp/datapact-trace}
POSTS=${BENCH_POSTS:-1000000}
LICENSEES=${BENCH_LICENSEES:-1000}
CANARIES=${BENCH_CANARIES:-1000}
PLANTED=${BENCH_PLANTED:-10}
REUSE=${BENCH_REUSE:-1}
ROUNDS=${BENCH_ROUNDS:-2}
BENCH_NAME=trace

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

if ! command -v rg >/dev/null; then
    log "installing ripgrep with apt-get"
    sudo=; [[ $(id -u) -eq 0 ]] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ripgrep >/dev/null ||
        { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq ripgrep >/dev/null; }
fi

log "building the trace engine (release) in $CARGO_TARGET_DIR"
(cd "$ROOT" && cargo build --release --quiet -p datapact-trace --example trace_bench)
note_build
TB=$CARGO_TARGET_DIR/release/examples/trace_bench
OPTS=(--posts "$POSTS" --licensees "$LICENSEES" --canaries "$CANARIES" --planted "$PLANTED")

DIR=$WORK/leak-$POSTS
mkdir -p "$WORK"
if ! ((REUSE)) || [[ ! -s $DIR/leak.jsonl || ! -s $DIR/canaries.txt || ! -f $DIR/done ]]; then
    rm -rf "$DIR"
    log "writing a leak of $POSTS fingerprinted posts and $CANARIES canaries"
    "$TB" generate "$DIR" "${OPTS[@]}" >"$WORK/generate.out"
    touch "$DIR/done"
fi
LEAK=$DIR/leak.jsonl
SIZE=$(stat -c %s "$LEAK")
LINES=$(wc -l <"$LEAK")
# Warm the page cache so neither side pays for the disk.
cat "$LEAK" >/dev/null

secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
RG_BEST= TRACE_BEST= E2E_BEST= RG_HITS= OUT=
for round in $(seq "$ROUNDS"); do
    wait_quiet "rg round $round"
    t0=$(date +%s.%N)
    RG_HITS=$(rg -F -c -f "$DIR/canaries.txt" "$LEAK" || true)
    t1=$(date +%s.%N)
    rg_s=$(secs "$t0" "$t1")
    log "round $round: rg -F -f ${rg_s}s ($RG_HITS matching lines)"
    wait_quiet "trace round $round"
    OUT=$("$TB" trace "$DIR" "${OPTS[@]}")
    scan_s=$(awk '$1 == "scan_s" { print $2 }' <<<"$OUT")
    corpus_s=$(awk '$1 == "corpus_s" { print $2 }' <<<"$OUT")
    e2e_s=$(awk -v a="$scan_s" -v b="$corpus_s" 'BEGIN { printf "%.3f", a + b }')
    log "round $round: trace ${scan_s}s (+ corpus ${corpus_s}s)"
    best() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'; }
    RG_BEST=$(best "$RG_BEST" "$rg_s")
    TRACE_BEST=$(best "$TRACE_BEST" "$scan_s")
    E2E_BEST=$(best "$E2E_BEST" "$e2e_s")
done

mbps() { awk -v s="$SIZE" -v t="$1" 'BEGIN { printf "%.0f", s / t / 1e6 }'; }
bench_header "trace benchmark"
echo "leak: $(fmt_int "$LINES") lines, $(awk -v s="$SIZE" 'BEGIN { printf "%.0f", s / 1e6 }') MB; $LICENSEES licensees; $CANARIES canaries ($PLANTED planted)"
echo "machine load before each phase: ${QUIET_NOTE%, }"
echo "trace result: $(awk '$1 == "accused" { $1 = ""; print }' <<<"$OUT" | sed 's/^ //') accused; $(awk '$1 == "canary_hits" { print $2 }' <<<"$OUT") canary hit(s); $(awk '$1 == "posts_read" { print $2 }' <<<"$OUT") posts read over $(awk '$1 == "stages" { print $2 }' <<<"$OUT") stage(s)"
echo "best of $ROUNDS:"
echo "  rg -F -f canaries.txt : ${RG_BEST}s ($(mbps "$RG_BEST") MB/s)"
echo "  trace (leak)          : ${TRACE_BEST}s ($(mbps "$TRACE_BEST") MB/s)"
echo "  trace (corpus + leak) : ${E2E_BEST}s"
echo "throughput ratio (trace / rg, target >= 1.0): $(ratio "$RG_BEST" "$TRACE_BEST")x"
echo "end-to-end ratio (with the corpus build):    $(ratio "$RG_BEST" "$E2E_BEST")x"
