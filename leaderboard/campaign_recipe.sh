#!/usr/bin/env bash
# The seeds' experiments again on the whole-batch minibatch-std recipe (issue 43): on both mnist tasks,
# vanilla, RepFair (Algorithm 1 at C = 5, and the C sweep {1, 2, 10, 20} on two seeds), groupcond, then
# rebalance started from each new vanilla base of the same seed. Every job is a `fairbench sweep` job:
# resumable (rerun the same command), scored when trained, results under OUT/<task>/<entry>/seed<S>/.
#
#   leaderboard/campaign_recipe.sh                 # CPU: two jobs at once, 20,000 steps (days on 2 cores)
#   DEVICE=cuda JOBS=12 leaderboard/campaign_recipe.sh   # one GPU: the jobs share it as parallel processes
#
# Environment: OUT (default runs/campaign-recipe), STEPS (20000), SEEDS (0 1 2), SWEEP_SEEDS (0 1), TASKS,
# JOBS (2), DEVICE (auto), SAMPLES (the task's), TIME_LIMIT (e.g. 8m30s: stop saving, rerun to resume).
# The device and the start time are appended to OUT/device.txt, so the results say where they ran.
set -uo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign-recipe}
STEPS=${STEPS:-20000}
SEEDS=${SEEDS:-0 1 2}
SWEEP_SEEDS=${SWEEP_SEEDS:-0 1}
TASKS=${TASKS:-mnist-bicolor,mnist-bicolor-imbalanced}
JOBS=${JOBS:-2}
DEVICE=${DEVICE:-auto}
RECIPE=(--set minibatch_std=true --set mbstd_group=64)
mkdir -p "$OUT"
{ date -u +"%F %T UTC"; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || nproc --all | sed 's/$/ CPU cores, no GPU/'; } >> "$OUT/device.txt"
common=(-t "$TASKS" --steps "$STEPS" --snapshot-every $((STEPS / 10 > 0 ? STEPS / 10 : 1)) --out "$OUT" -j "$JOBS"
        --device "$DEVICE")
[ -n "${SAMPLES:-}" ] && common+=(-n "$SAMPLES")
[ -n "${TIME_LIMIT:-}" ] && common+=(--time-limit "$TIME_LIMIT")
comma() { echo "$*" | tr ' ' ','; }
status=0
"$FB" sweep -m vanilla,repfair,groupcond --seeds "$(comma $SEEDS)" "${RECIPE[@]}" "${common[@]}" || status=$?
"$FB" sweep -m repfair --set clip_norm=1,2,10,20 --seeds "$(comma $SWEEP_SEEDS)" "${RECIPE[@]}" "${common[@]}" \
  || status=$?
# Rebalancing from the new vanilla bases: one run per base, JOBS at a time.
IFS=, read -r -a task_list <<< "$TASKS"
pids=()
for task in "${task_list[@]}"; do
  for seed in $SEEDS; do
    base="$OUT/$task/vanilla@mbstd_group=64,minibatch_std=true/seed$seed/checkpoint.pt"
    if [ ! -f "$base" ]; then echo "campaign: no vanilla base for $task seed $seed yet; rerun when it is trained" >&2; status=1; continue; fi
    run_dir="$OUT/$task/rebalance/seed$seed"
    ( "$FB" run --method rebalance --task "$task" --seed "$seed" --steps "$STEPS" --base "$base" --out "$OUT" \
        --device "$DEVICE" > /dev/null \
      && { [ -f "$run_dir/result.json" ] || "$FB" score "$run_dir/checkpoint.pt" --device "$DEVICE" \
             ${SAMPLES:+-n "$SAMPLES"} > /dev/null; } ) &
    pids+=($!)
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 2; done
  done
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
