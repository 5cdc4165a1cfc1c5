#!/usr/bin/env bash
# Regenerate everything in leaderboard/ that is derived from the committed result files, in one command:
#   leaderboard/regenerate.sh [--screenshot]        (or: make leaderboard)
# - `fairbench report --samples-if-scored` for every result: its charts, plus sample grids when the scored
#   checkpoint (same sha256) is still on disk; training runs are not committed, so usually the grids drawn earlier
#   are kept;
# - for every conditional task, figures/<task>.per-condition.png (`fairbench conditions`: each entry's share of
#   the last group per condition, mean over seeds and each seed, like the RepFair paper's Figure 2);
# - for every task with a sweep of RepFair's clip norm, figures/<task>.clip-norm.png (`fairbench vary`: share,
#   kl_uniform and FID against C, like the paper's Figure 6);
# - leaderboard.md, leaderboard.csv and leaderboard.html (`fairbench leaderboard --html`);
# - with --screenshot, leaderboard/screenshot.png (the README's picture of the page; needs chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
PY=${PYTHON:-.venv/bin/python}
# A checkpoint path may hold another run by now (a longer rerun writes to the same folder): --samples-if-scored
# draws samples only from the very file that was scored, one whose sha256 matches the result's.
find leaderboard/results -name '*.json' -print0 | sort -z | xargs -0 "$FB" report --samples-if-scored >/dev/null
for folder in leaderboard/results/*/; do
  task=$(basename "$folder")
  if "$PY" -c 'import sys; from fairbench.tasks import get_task; sys.exit(not get_task(sys.argv[1]).conditional)' "$task"; then
    "$FB" conditions "$folder" --out "leaderboard/figures/$task.per-condition.png" >/dev/null
  fi
  if compgen -G "${folder}repfair@clip_norm=*" >/dev/null; then  # the C sweep: Algorithm 1 (default C) and each C
    default=$("$PY" -c 'from baselines.repfair import VARIANT_CLIP; print(VARIANT_CLIP["alg1"])')
    "$FB" vary "${folder}repfair" "${folder}"repfair@clip_norm=* --param clip_norm --default "$default" \
      --out "leaderboard/figures/$task.clip-norm.png" >/dev/null
  fi
done
"$FB" leaderboard --results leaderboard/results --out leaderboard --html >/dev/null
if [ "${1:-}" = "--screenshot" ]; then
  "$PY" -m fairbench.leaderboard.screenshot leaderboard/leaderboard.html leaderboard/screenshot.png
fi
echo "leaderboard/leaderboard.md leaderboard/leaderboard.csv leaderboard/leaderboard.html"
