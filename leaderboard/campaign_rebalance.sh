#!/usr/bin/env bash
# Model rebalancing (issue 12), base versus rebalanced, one run per task and seed. Resumable: rerun the same
# command to continue (a finished run is only scored if its result.json is missing).
#   FAIRBENCH_DATA=/path/to/data leaderboard/campaign_rebalance.sh [SEEDS...]     (default seeds: 0 1 2)
# The base: each task's BASE_METHOD run (default vanilla) of the campaigns with the same seed when it exists
# (BASE=campaign, the default; e.g. BASE_METHOD=mbstd SETS=minibatch_std=true for the batch-aware comparator,
# whose folder then says so); with BASE=own, or when that run is missing, the method trains its own base in its run folder (the
# task's training.steps of `vanilla` with SETS' GAN keys, e.g. minibatch_std=true for a batch-aware D), and
# that base is scored too, into RUN/base-result.json, so both sides of the comparison exist.
# SETS: the method's settings. The defaults suit a judge-grade auxiliary classifier; on the small 32x32 tasks
# the classifier is weak (UTKFace: balanced accuracy about 0.5-0.6), so it trains longer and wider and a latent
# counts for a group at confidence 0.5 instead of 0.9 (at 0.9 no White latent is ever confident).
# STEPS: the retraining's steps. A collapsed base (a group it never draws) ends its run with a one-line error
# saying so; the campaign goes on with the next run and exits non-zero at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign}
STEPS=${STEPS:-1500}
TASKS=${TASKS:-utkface-race}
SETS=${SETS:-aux_steps=3000 aux_width=32 threshold=0.5}
BASE=${BASE:-campaign}
BASE_METHOD=${BASE_METHOD:-vanilla}
SEEDS=${*:-0 1 2}
sets=()
for s in $SETS; do sets+=(--set "$s"); done
status=0
for task in $TASKS; do
  for seed in $SEEDS; do
    base=()
    campaign_base="$OUT/$task/$BASE_METHOD/seed$seed/checkpoint.pt"
    if [ "$BASE" = campaign ] && [ -f "$campaign_base" ]; then base=(--base "$campaign_base"); fi
    # stdout to a file, not `tee /dev/stderr`: reopening stderr when it is a log file would truncate the log.
    printed=$(mktemp)
    "$FB" run -m rebalance -t "$task" --seed "$seed" --steps "$STEPS" "${base[@]}" --out "$OUT" "${sets[@]}" \
      --snapshot-every 500 > "$printed"
    code=$?
    cat "$printed"
    checkpoint=$(tail -n 1 "$printed")
    rm -f "$printed"
    if [ $code -ne 0 ] || [ ! -f "$checkpoint" ]; then
      echo "failed: rebalance on $task seed $seed (the reason is above)"; status=1; continue
    fi
    run=$(dirname "$checkpoint")
    if [ ${#base[@]} -eq 0 ] && [ ! -f "$run/base-result.json" ]; then
      own=$(find "$run/phases/base" -name checkpoint.pt | head -n 1)
      "$FB" score "$own" --out "$run/base-result.json" >/dev/null || status=1
    fi
    if [ -f "$run/result.json" ]; then echo "done: $run/result.json"; continue; fi
    "$FB" score "$checkpoint" --out "$run/result.json" || status=1
  done
done
exit $status
