#!/usr/bin/env bash
# Reference runs on the RGB tasks (issue 11): cifar10-lt and utkface-race, every GAN method, 3 seeds. Resumable:
# rerun the same command to continue. STEPS defaults to each task's training.steps; on 2 CPU cores the committed
# utkface-race results use its 5,000 and the cifar10-lt ones STEPS=1500 (a tenth of its 20,000, far fewer than
# the literature's; the board shows each entry's steps). TASKS (default: both) picks the tasks.
#   FAIRBENCH_DATA=/path/to/data leaderboard/campaign_tasks.sh [SEEDS...]     (default seeds: 0 1 2)
# BOARD (default leaderboard/results): jobs whose result is committed there already are skipped; BOARD= trains all.
# PLAN=1 runs nothing and prints where every job stands (`fairbench sweep --plan`).
set -uo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign}
JOBS=${JOBS:-2}
TASKS=${TASKS:-cifar10-lt,utkface-race}
SEEDS=${*:-0 1 2}
options=()
if [ -n "${STEPS:-}" ]; then options=(--steps "$STEPS"); fi
BOARD=${BOARD-leaderboard/results}
if [ -n "$BOARD" ]; then options+=(--board "$BOARD"); fi
if [ -n "${PLAN:-}" ]; then options+=(--plan); fi
"$FB" sweep -m vanilla,repfair,groupcond,mbstd -t "$TASKS" --seeds "${SEEDS// /,}" \
  "${options[@]}" --snapshot-every 500 --out "$OUT" -j "$JOBS"
