#!/usr/bin/env bash
# Terms-enforcement benchmark (issue 4, item 9): `serve` (terms enforced on every request:
# agreement, status, term, network, endpoint and purpose checks, the exact rate limiter and its
# X/IETF headers) against `serve --unenforced` (the hidden benchmark flag: checks and limiter off).
# Targets: enforced serves <= 10 % fewer requests/s, and adds <= 0.5 ms at p99.
# Usage and environment: see bench/ab.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AB_NAME=terms AB_A=enforced AB_B=unenforced AB_B_FLAG=--unenforced AB_B_SAYS='NOT enforced'
AB_TITLE="datapact terms-enforcement benchmark (issue 4)" AB_PORT=18280 AB_RPS_TARGET=10 AB_P99_TARGET=0.5
# Both unmetered: one process writes a data dir's ledger, and this measures enforcement alone.
AB_COMMON_FLAGS=--unmetered

# Every request must have been admitted (limits out of reach).
ab_check_a() {
    grep -qi '^x-rate-limit-remaining' "$WORK/headers-$AB_A-lookup.txt" || die "the enforced gateway sent no rate-limit headers"
}
ab_after_rounds() {
    curl -sS --fail -D - -o /dev/null -H "Authorization: Bearer $KEY" \
        "http://127.0.0.1:$PORT$(head -1 "$WORK/paths-lookup.txt")" | grep -i '^x-rate-limit' >"$WORK/headers-after.txt" || true
}
ab_report() {
    echo "enforced gateway's rate-limit headers after the run: $(tr -d '\r' <"$WORK/headers-after.txt" | tr '\n' ' ')"
}
# shellcheck source=bench/ab.sh
source "$ROOT/bench/ab.sh"
