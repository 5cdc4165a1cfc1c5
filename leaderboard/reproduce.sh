#!/usr/bin/env bash
# Reproduce the committed reference results: train (resumable: rerun to continue), score, grid, reports, leaderboard.
#   FAIRBENCH_DATA=/path/to/data leaderboard/reproduce.sh [SEEDS...]      (default seeds: 0 1 2)
# Each run is `fairbench run`, so an interrupted script picks up where it stopped when run again.
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
SEEDS=${*:-0 1 2}
TASKS="mnist-bicolor mnist-bicolor-imbalanced"
METHODS="vanilla repfair"
for seed in $SEEDS; do
  for task in $TASKS; do
    for method in $METHODS; do
      ckpt=$($FB run --method "$method" --task "$task" --seed "$seed" --out runs | tail -n 1)
      $FB score "$ckpt" --out "leaderboard/results/$task/$method/seed$seed.json" >/dev/null
      $FB grid "$ckpt" --out "leaderboard/samples/$task-$method-seed$seed.png" --per-condition 10 --scale 2 >/dev/null
    done
  done
done
FAIRBENCH=$FB leaderboard/regenerate.sh   # report charts (grids from the runs above), md, csv, html
