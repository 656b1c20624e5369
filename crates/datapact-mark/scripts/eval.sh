#!/usr/bin/env bash
# Reproduces the tables of TRACING.md (~50 min on 2 cores).
# Needs: apt-get install -y fortunes fortunes-de, and the demo corpus as JSON Lines with a
# "text" field at $DEMO (default /tmp/mark-demo.jsonl: datapact-demo's CorpusSpec::default(),
# 20,000 posts; see TRACING.md for how it was written).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/target-mark}"
cargo build --release --example eval
E="$CARGO_TARGET_DIR/release/examples/eval"
OUT="${OUT:-/tmp/mark-eval}"
mkdir -p "$OUT"
DEMO="${DEMO:-/tmp/mark-demo.jsonl}"
SMALL="${SMALL_TRIALS:-500}"
BIG="${BIG_TRIALS:-200}"
run() { # name, source args...
  local name="$1"; shift
  "$E" "$@" --name "$name" --trials "$SMALL" --coalitions 1,2,4 --matrix full > "$OUT/$name-c124.md"
  "$E" "$@" --name "$name" --trials "$BIG" --coalitions 8 --matrix full > "$OUT/$name-c8.md"
}
run demo --jsonl "$DEMO"
run fortunes-en --fortunes /usr/share/games/fortunes
run fortunes-de --fortunes /usr/share/games/fortunes/de
# Production setting: one secret tuned for c = 8, smaller coalitions.
"$E" --jsonl "$DEMO" --name demo-tuned8 --tune 8 --trials "$SMALL" --coalitions 1,2,4 --matrix strategies > "$OUT/demo-tuned8.md"
# Zero-width channel on (off by default) against the normalising attacks.
"$E" --fortunes /usr/share/games/fortunes --name fortunes-en-zero-width --channels default+zero-width --trials "$BIG" --coalitions 1,2,4 --matrix attacks > "$OUT/fortunes-en-zero-width.md"
# Loose-epsilon check of the innocent-accusation rate (each checkpoint is a test at eps).
"$E" --fortunes /usr/share/games/fortunes --name fortunes-en-eps0.5 --epsilon 0.5 --trials 300 --coalitions 2 --matrix strategies > "$OUT/fortunes-en-eps.md"
# Optional: the built-in synthetic corpus.
if [ -n "${SYNTHETIC:-}" ]; then
  "$E" --synthetic 20000 --name synthetic --trials "$SMALL" --coalitions 1,2,4,8 --matrix strategies > "$OUT/synthetic.md"
fi
echo "results in $OUT"
