#!/usr/bin/env bash
# Model rebalancing on the RGB tasks (issue 12): each task's vanilla reference run of campaign_tasks.sh (same seed)
# is the base; rebalance retrains it for STEPS steps and the result is scored like any other run. Resumable: rerun
# the same command to continue (a finished run only gets scored if its result.json is missing).
#   FAIRBENCH_DATA=/path/to/data leaderboard/campaign_rebalance.sh [SEEDS...]     (default seeds: 0 1 2)
# SETS: the method's settings. The defaults suit a judge-grade auxiliary classifier; on these small 32x32 tasks
# the classifier is weak (UTKFace: balanced accuracy about 0.5-0.6), so it trains longer and wider and a latent
# counts for a group at confidence 0.5 instead of 0.9 (at 0.9 no White latent is ever confident).
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign}
STEPS=${STEPS:-1500}
TASKS=${TASKS:-utkface-race}
SETS=${SETS:-aux_steps=3000 aux_width=32 threshold=0.5}
SEEDS=${*:-0 1 2}
sets=()
for s in $SETS; do sets+=(--set "$s"); done
for task in $TASKS; do
  for seed in $SEEDS; do
    base="$OUT/$task/vanilla/seed$seed/checkpoint.pt"
    if [ ! -f "$base" ]; then echo "skipped: $task seed $seed (no base $base; run campaign_tasks.sh first)"; continue; fi
    checkpoint=$("$FB" run -m rebalance -t "$task" --seed "$seed" --steps "$STEPS" --base "$base" --out "$OUT" \
      "${sets[@]}" --snapshot-every 500 | tee /dev/stderr | tail -n 1)
    result="$(dirname "$checkpoint")/result.json"
    if [ -f "$result" ]; then echo "done: $result"; continue; fi
    "$FB" score "$checkpoint" --out "$result"
  done
done
