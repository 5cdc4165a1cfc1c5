#!/usr/bin/env bash
# Bring a campaign's finished runs onto the board: each OUT/<task>/<method folder>/seed<S>/result.json is copied
# (atomically) to leaderboard/results/<task>/<method folder>/seed<S>.json with a sample grid in
# leaderboard/samples/, then everything derived is rebuilt (regenerate.sh). Runs still training are left out.
#   leaderboard/collect.sh [OUT]        (default: runs/campaign)
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${1:-runs/campaign}
find "$OUT" -path '*/seed*/result.json' | sort | while read -r result; do
  run=$(dirname "$result")
  seed=$(basename "$run")
  method=$(basename "$(dirname "$run")")
  task=$(basename "$(dirname "$(dirname "$run")")")
  target="leaderboard/results/$task/$method/$seed.json"
  mkdir -p "$(dirname "$target")" leaderboard/samples
  cp "$result" "$target.tmp" && mv "$target.tmp" "$target"
  "$FB" grid "$run/checkpoint.pt" --out "leaderboard/samples/$task-$method-$seed.png" --per-condition 10 --scale 2 >/dev/null
  echo "$target"
done
FAIRBENCH=$FB leaderboard/regenerate.sh
