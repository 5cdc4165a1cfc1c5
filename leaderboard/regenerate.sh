#!/usr/bin/env bash
# Regenerate everything in leaderboard/ that is derived from the committed result files, in one command:
#   leaderboard/regenerate.sh [--no-screenshot]     (or: make leaderboard)
# - `fairbench report --samples-if-scored` for every result: its charts, plus sample grids when the scored
#   checkpoint (same sha256) is still on disk; training runs are not committed, so usually the grids drawn earlier
#   are kept;
# - for every conditional task, figures/<task>.per-condition.png (`fairbench conditions`: each entry's share of
#   the last group per condition, mean over seeds and each seed, like the RepFair paper's Figure 2);
# - for every task, figures/<task>.fairness-quality.png (`python -m fairbench.report.tradeoff`: every entry's KL
#   to uniform against its FID, each run and the mean, groupcond marked as fair by construction, and the real data
#   at the feature network's floor; results older than the floor get it from $FAIRBENCH_DATA when the data is there);
# - for every task with a sweep of RepFair's clip norm, figures/<task>.clip-norm.png (`fairbench vary`: share,
#   kl_uniform and FID against C, like the paper's Figure 6);
# - leaderboard.md, leaderboard.csv and leaderboard.html (`fairbench leaderboard --html`);
# - docs/findings.md, whose every number is read from the results by leaderboard/findings.py (from the template
#   docs/findings.template.md); it stops, naming the sentence, when a claim of the template no longer holds;
# - leaderboard/screenshot.png, the README's picture of the page at 1,280 px, retaken with headless Chromium
#   so it never lags the board; without Chromium it says so and keeps the old picture. --no-screenshot skips it
#   (--screenshot, once needed to take it, is still accepted).
set -euo pipefail
cd "$(dirname "$0")/.."
FB=${FAIRBENCH:-.venv/bin/fairbench}
PY=${PYTHON:-.venv/bin/python}
case "${1:-}" in
  ""|--screenshot) shoot=1 ;;
  --no-screenshot) shoot=0 ;;
  *) echo "usage: leaderboard/regenerate.sh [--no-screenshot]" >&2; exit 2 ;;
esac
# A checkpoint path may hold another run by now (a longer rerun writes to the same folder): --samples-if-scored
# draws samples only from the very file that was scored, one whose sha256 matches the result's.
find leaderboard/results -name '*.json' ! -name '*.report.json' -print0 | sort -z | xargs -0 "$FB" report --samples-if-scored >/dev/null
for folder in leaderboard/results/*/; do
  task=$(basename "$folder")
  if "$PY" -c 'import sys; from fairbench.task_registry import get_task; sys.exit(not get_task(sys.argv[1]).conditional)' "$task"; then
    "$FB" conditions "$folder" --out "leaderboard/figures/$task.per-condition.png" >/dev/null
  fi
  "$PY" -m fairbench.report.tradeoff "$folder" --out "leaderboard/figures/$task.fairness-quality.png" >/dev/null
  if compgen -G "${folder}repfair@clip_norm=*" >/dev/null; then  # the C sweep: Algorithm 1 (default C) and each C
    default=$("$PY" -c 'from baselines.repfair import VARIANT_CLIP; print(VARIANT_CLIP["alg1"])')
    "$FB" vary "${folder}repfair" "${folder}"repfair@clip_norm=* --param clip_norm --default "$default" \
      --out "leaderboard/figures/$task.clip-norm.png" >/dev/null
  fi
done
"$FB" leaderboard --results leaderboard/results --out leaderboard --html >/dev/null
made="leaderboard/leaderboard.md leaderboard/leaderboard.csv leaderboard/leaderboard.html"
"$PY" leaderboard/findings.py >/dev/null
made="$made docs/findings.md"
if [ "$shoot" = 1 ]; then
  if "$PY" -c 'import sys; from fairbench.board.screenshot import find_chromium; sys.exit(find_chromium() is None)'; then
    "$PY" -m fairbench.board.screenshot leaderboard/leaderboard.html leaderboard/screenshot.png >/dev/null
    made="$made leaderboard/screenshot.png"
  else
    echo "no Chromium on PATH: leaderboard/screenshot.png not retaken (Debian: apt-get install chromium)" >&2
  fi
fi
echo "$made"
