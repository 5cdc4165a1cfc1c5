#!/usr/bin/env bash
# Reference runs on the RGB tasks (issue 11): cifar10-lt and utkface-race, every GAN method, 3 seeds. Resumable:
# rerun the same command to continue. STEPS defaults to each task's training.steps (utkface-race 5,000, cifar10-lt
# 20,000: about 80 minutes a run on one CPU core; the archived cifar10-lt set used STEPS=1500; the board shows each
# entry's steps). TASKS (default: both) picks the tasks.
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
