#!/usr/bin/env bash
# The reference campaign behind the board (issue 10): mnist-bicolor and its imbalanced twin, every reference
# method and the sweep of RepFair's clip C, long runs with a generator snapshot every 2,000 steps (for learning
# curves). Resumable: rerun the same command after any interruption and every job continues from its training
# state; finished jobs are skipped.
#   FAIRBENCH_DATA=/path/to/data leaderboard/campaign.sh [SEEDS...]     (default seeds: 0 1 2 3 4)
# Environment: OUT (runs folder, default runs/campaign), STEPS (default 20000), TASKS, JOBS (default 2);
# PLAN=1 runs nothing and prints where every job stands and the training steps left (`fairbench sweep --plan`).
# BOARD (default leaderboard/results): jobs whose result is committed there already are skipped, so a fresh
# checkout (or a GPU machine) trains only what the board lacks; BOARD= (empty) trains every job.
# On a GPU machine the runs use CUDA (--device auto); each result records its device.
set -uo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign}
STEPS=${STEPS:-20000}
TASKS=${TASKS:-mnist-bicolor,mnist-bicolor-imbalanced}
JOBS=${JOBS:-2}
SEEDS=${*:-0 1 2 3 4}
common=(-t "$TASKS" --steps "$STEPS" --snapshot-every 2000 --out "$OUT" -j "$JOBS")
[ -n "${PLAN:-}" ] && common+=(--plan)
BOARD=${BOARD-leaderboard/results}
[ -n "$BOARD" ] && common+=(--board "$BOARD")
status=0
for seed in $SEEDS; do
  # Five seeds: vanilla, the fair-by-construction reference, the batch-signal comparator, RepFair (Algorithm 1).
  "$FB" sweep -m vanilla,groupcond,mbstd,repfair --seeds "$seed" "${common[@]}" || status=1
  if [ "$seed" -lt 3 ]; then  # three seeds: the other published RepFair variants
    "$FB" sweep -m repfair --set variant=authors,total-norm --seeds "$seed" "${common[@]}" || status=1
    # The paper's Figure 6, C in {1, 2, 5, 10, 20, 50} for Algorithm 1: C = 5 is its default entry above.
    "$FB" sweep -m repfair --set clip_norm=1,2,10,20,50 --seeds "$seed" "${common[@]}" || status=1
  fi
done
exit $status
