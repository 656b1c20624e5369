#!/usr/bin/env bash
# Marking benchmark (issue 7, item 5): `serve` (every post's text is the licensee's fingerprinted
# copy: one SipHash per site and a copy with the alternate forms spliced in) against
# `serve --unmarked` (the hidden benchmark flag: everyone gets the public text). Both run
# `--unmetered`, so this measures marking alone. Target: marking costs <= 5 % of requests/s.
# Usage and environment: see bench/ab.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AB_NAME=marking AB_A=marked AB_B=unmarked AB_B_FLAG=--unmarked AB_B_SAYS='NOT marked'
AB_TITLE="datapact marking benchmark (issue 7)" AB_PORT=18480 AB_RPS_TARGET=5 AB_P99_TARGET=0.5
AB_COMMON_FLAGS=--unmetered AB_SAME_BYTES=0

# The marked gateway must really serve marked copies: its copy of a post differs from the other's
# for at least one of the first 50 lookup paths.
ab_check_a() {
    local differ=0 path
    while read -r path; do
        if ! cmp -s <(curl -sS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT$path") \
            <(curl -sS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$((PORT + 2))$path"); then
            differ=$((differ + 1))
        fi
    done < <(head -50 "$WORK/paths-lookup.txt")
    ((differ > 0)) || die "the marked and unmarked gateways served the same bytes for 50 posts"
    echo "$differ of 50 posts differ between the marked and the unmarked gateway" >"$WORK/marked-check.txt"
}
ab_after_rounds() { :; }
ab_report() {
    cat "$WORK/marked-check.txt"
}
# shellcheck source=bench/ab.sh
source "$ROOT/bench/ab.sh"
