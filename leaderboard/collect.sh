#!/usr/bin/env bash
# Bring a campaign's finished runs onto the board: each OUT/<task>/<method folder>/seed<S>/result.json is copied
# (atomically) to leaderboard/results/<task>/<method folder>/seed<S>.json with a sample grid in
# leaderboard/samples/, then everything derived is rebuilt (regenerate.sh). Runs still training are left out.
# A committed result trained at another budget (steps or batch size) is never replaced: it is another entry,
# and the run is left out with a one-line note (move the old entry elsewhere first).
#   leaderboard/collect.sh [OUT]        (default: runs/campaign)
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
PY=${PYTHON:-.venv/bin/python}
budget() { "$PY" -c 'import json,sys; t=json.load(open(sys.argv[1])).get("train") or {}; print(t.get("steps"), t.get("batch_size"))' "$1"; }
OUT=${1:-runs/campaign}
find "$OUT" -path '*/seed*/result.json' | sort | while read -r result; do
  run=$(dirname "$result")
  seed=$(basename "$run")
  method=$(basename "$(dirname "$run")")
  task=$(basename "$(dirname "$(dirname "$run")")")
  target="leaderboard/results/$task/$method/$seed.json"
  committed=$([ -e "$target" ] && budget "$target" || true)
  if [ -n "$committed" ] && [ "$committed" != "$(budget "$result")" ]; then
    echo "collect: left out $run: $target was trained at another budget (steps, batch: $committed)" >&2
    continue
  fi
  mkdir -p "$(dirname "$target")" leaderboard/samples
  cp "$result" "$target.tmp" && mv "$target.tmp" "$target"
  "$FB" grid "$run/checkpoint.pt" --out "leaderboard/samples/$task-$method-$seed.png" --per-condition 10 --scale 2 >/dev/null
  echo "$target"
done
FAIRBENCH=$FB leaderboard/regenerate.sh
