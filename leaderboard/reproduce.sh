#!/usr/bin/env bash
# Reproduce the committed reference results: the campaigns (resumable: rerun to continue), then the board.
#   FAIRBENCH_DATA=/path/to/data leaderboard/reproduce.sh
# campaign.sh: mnist-bicolor(-imbalanced), 20,000 steps, 5 seeds (3 for the other RepFair variants and the C sweep);
# campaign_tasks.sh: utkface-race at its 5,000 steps, cifar10-lt at its 20,000 (every method and seed 0-2: more than
# the board holds so far); campaign_rebalance.sh: rebalance on utkface-race and cifar10-lt (each seed's vanilla run
# from campaign_tasks.sh as its base), on mnist-bicolor (mbstd seed 0 as its base), and on mnist-bicolor-imbalanced
# with bases it trains itself (vanilla and mbstd-like); the latter stop with the collapse error, which is the
# measured result.
# collect.sh copies every finished result onto the board and rebuilds it. On a GPU machine all runs use CUDA.
# Every run trains again (BOARD= : the campaigns do not skip what the board holds).
set -euo pipefail
cd "$(dirname "$0")/.."
export BOARD=
leaderboard/campaign.sh
TASKS=utkface-race leaderboard/campaign_tasks.sh
TASKS=cifar10-lt leaderboard/campaign_tasks.sh
TASKS="utkface-race cifar10-lt" STEPS=1500 leaderboard/campaign_rebalance.sh
BASE_METHOD=mbstd TASKS=mnist-bicolor STEPS=2000 SETS=minibatch_std=true leaderboard/campaign_rebalance.sh 0
for sets in " " "minibatch_std=true"; do  # every base collapsed here: these runs end with the collapse error
  BASE=own TASKS=mnist-bicolor-imbalanced STEPS=2000 SETS="$sets" leaderboard/campaign_rebalance.sh || true
done
leaderboard/collect.sh
