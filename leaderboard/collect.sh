#!/usr/bin/env bash
# Bring a campaign's finished runs onto the board: each OUT/<task>/<method folder>/seed<S>/result.json is copied
# (atomically) to leaderboard/results/<task>/<method folder>/seed<S>.json with a sample grid in
# leaderboard/samples/, then everything derived is rebuilt (regenerate.sh). Runs still training are left out.
# A committed result trained at another budget (steps or batch size) is never replaced: it is another entry,
# and the run is left out with a one-line note (move the old entry elsewhere first). A run collected before and
# unchanged since is skipped, so collecting again costs only the rebuild.
#   leaderboard/collect.sh [OUT]        (default: runs/campaign)
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
PY=${PYTHON:-.venv/bin/python}
# How the run stands against the committed result at the same place: "new" (none there, or this run's retrain
# or rescore at the same budget), "same" (collected before, unchanged since) or "steps, batch: S B" (another budget).
standing() {
  "$PY" - "$1" "$2" <<'PY'
import json, os, sys
run = json.load(open(sys.argv[1]))
board = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
budget = lambda r: ((r.get("train") or {}).get("steps"), (r.get("train") or {}).get("batch_size"))
if board is None:
    print("new")
elif budget(board) != budget(run):
    print("steps, batch: %s %s" % budget(board))
else:
    for r in (board, run):
        r.pop("report", None)  # the figures regenerate.sh lists: added on the board
    print("same" if board == run else "new")
PY
}
OUT=${1:-runs/campaign}
find "$OUT" -path '*/seed*/result.json' | sort | while read -r result; do
  run=$(dirname "$result")
  seed=$(basename "$run")
  method=$(basename "$(dirname "$run")")
  task=$(basename "$(dirname "$(dirname "$run")")")
  target="leaderboard/results/$task/$method/$seed.json"
  grid="leaderboard/samples/$task-$method-$seed.png"
  standing=$(standing "$result" "$target")
  case "$standing" in
    same) [ -e "$grid" ] && continue ;;  # collected before: its board JSON keeps the figures listed in it
    new) mkdir -p "$(dirname "$target")" leaderboard/samples
         cp "$result" "$target.tmp" && mv "$target.tmp" "$target" ;;
    *) echo "collect: left out $run: $target was trained at another budget ($standing)" >&2
       continue ;;
  esac
  "$FB" grid "$run/checkpoint.pt" --out "$grid" --per-condition 10 --scale 2 >/dev/null
  echo "$target"
done
FAIRBENCH=$FB leaderboard/regenerate.sh
