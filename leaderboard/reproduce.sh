#!/usr/bin/env bash
# Reproduce the committed reference results: the campaigns (resumable: rerun to continue), then the board.
#   FAIRBENCH_DATA=/path/to/data leaderboard/reproduce.sh
# campaign.sh: mnist-bicolor(-imbalanced), 20,000 steps, 5 seeds (3 for the other RepFair variants);
# campaign_tasks.sh: cifar10-lt and utkface-race (STEPS=1500 gives the committed CPU-budget results);
# campaign_rebalance.sh: rebalance on utkface-race, each seed's vanilla run from campaign_tasks.sh as its base.
# collect.sh copies every finished result onto the board and rebuilds it. On a GPU machine all runs use CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
leaderboard/campaign.sh
STEPS=${STEPS:-1500} leaderboard/campaign_tasks.sh
STEPS=${STEPS:-1500} leaderboard/campaign_rebalance.sh
leaderboard/collect.sh
