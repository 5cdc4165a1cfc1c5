#!/usr/bin/env bash
# Reference runs on the RGB tasks (issue 11): cifar10-lt and utkface-race, every GAN method, 3 seeds. Resumable:
# rerun the same command to continue. STEPS defaults to each task's training.steps; on 2 CPU cores the committed
# results used STEPS=1500 (far fewer than the literature's; the board shows each entry's steps).
#   FAIRBENCH_DATA=/path/to/data leaderboard/campaign_tasks.sh [SEEDS...]     (default seeds: 0 1 2)
set -uo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
OUT=${OUT:-runs/campaign}
JOBS=${JOBS:-2}
SEEDS=${*:-0 1 2}
steps=()
if [ -n "${STEPS:-}" ]; then steps=(--steps "$STEPS"); fi
"$FB" sweep -m vanilla,repfair,groupcond,mbstd -t cifar10-lt,utkface-race --seeds "${SEEDS// /,}" \
  "${steps[@]}" --snapshot-every 500 --out "$OUT" -j "$JOBS"
