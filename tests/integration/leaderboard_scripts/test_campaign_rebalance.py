"""leaderboard/campaign_rebalance.sh with a stand-in `fairbench` that records its calls: which base each run
gets, that a self-trained base is scored beside the run, and that one failed run does not stop the rest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers import REPO_ROOT

SCRIPT = REPO_ROOT / "leaderboard" / "campaign_rebalance.sh"

# `run` makes the run folder (its own base under phases/ when no --base is given) and prints the checkpoint
# last, as the real command does; seed 1 fails like a collapsed base. `score` writes its --out file.
FAKE = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
if [ "$1" = run ]; then
  task=""; seed=""; out=""; base=""
  while [ $# -gt 0 ]; do
    case "$1" in -t) task=$2; shift;; --seed) seed=$2; shift;; --out) out=$2; shift;; --base) base=$2; shift;; esac
    shift
  done
  if [ "$seed" = 1 ]; then echo "error: group 'white' is essentially absent" >&2; exit 2; fi
  run="$out/$task/rebalance/seed$seed"
  mkdir -p "$run"
  if [ -z "$base" ]; then mkdir -p "$run/phases/base/x"; touch "$run/phases/base/x/checkpoint.pt"; fi
  touch "$run/checkpoint.pt"
  echo "$run/checkpoint.pt"
elif [ "$1" = score ]; then
  while [ $# -gt 0 ]; do [ "$1" = --out ] && echo '{}' > "$2"; shift; done
fi
"""


def _campaign(tmp_path: Path, seeds: list[str], **env: str) -> tuple[int, list[str], Path]:
    fake = tmp_path / "fairbench"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    calls, out = tmp_path / "calls.txt", tmp_path / "runs"
    calls.touch()
    full = {**os.environ, "FAIRBENCH": str(fake), "CALLS": str(calls), "OUT": str(out), "TASKS": "toy",
            "STEPS": "5", **env}
    done = subprocess.run(["bash", str(SCRIPT), *seeds], env=full, capture_output=True, text=True, timeout=60)
    return done.returncode, calls.read_text().splitlines(), out


def test_own_base_is_trained_and_scored_and_a_failed_seed_does_not_stop_the_rest(tmp_path: Path) -> None:
    code, calls, out = _campaign(tmp_path, ["0", "1", "2"], BASE="own", SETS="minibatch_std=true")
    assert code == 1  # seed 1 failed, and the campaign says so at the end
    runs = [c for c in calls if c.startswith("run ")]
    assert len(runs) == 3 and not any("--base" in c for c in runs)
    assert all("--set minibatch_std=true" in c and "--steps 5" in c for c in runs)
    for seed in (0, 2):
        run = out / "toy" / "rebalance" / f"seed{seed}"
        assert (run / "base-result.json").is_file() and (run / "result.json").is_file()
    assert not (out / "toy" / "rebalance" / "seed1").exists()
    scored = [c for c in calls if c.startswith("score ")]
    assert len(scored) == 4  # base and rebalanced, for seeds 0 and 2


def test_campaign_base_is_passed_when_it_exists_and_a_rerun_scores_nothing_twice(tmp_path: Path) -> None:
    vanilla = tmp_path / "runs" / "toy" / "vanilla" / "seed0"
    vanilla.mkdir(parents=True)
    (vanilla / "checkpoint.pt").touch()
    code, calls, out = _campaign(tmp_path, ["0"])
    assert code == 0
    assert calls[0].startswith("run ") and f"--base {vanilla / 'checkpoint.pt'}" in calls[0]
    assert "--set aux_steps=3000 --set aux_width=32 --set threshold=0.5" in calls[0]  # the default SETS
    assert not (out / "toy" / "rebalance" / "seed0" / "base-result.json").exists()  # its base has its own result
    code, calls, _ = _campaign(tmp_path, ["0"])
    assert code == 0 and [c.split()[0] for c in calls].count("score") == 1  # only the first campaign scored


def test_a_log_file_keeps_everything_written_before_and_during_the_campaign(tmp_path: Path) -> None:
    """`campaign_rebalance.sh >> log 2>&1`: the run's output and errors land in the log, and nothing truncates it
    (writing through /dev/stderr would reopen the log file and empty it)."""
    fake = tmp_path / "fairbench"
    fake.write_text(FAKE)
    fake.chmod(0o755)
    log = tmp_path / "campaign.log"
    log.write_text("an earlier campaign's line\n")
    env = {**os.environ, "FAIRBENCH": str(fake), "CALLS": str(tmp_path / "calls.txt"), "OUT": str(tmp_path / "runs"),
           "TASKS": "toy", "BASE": "own"}
    with log.open("a") as sink:
        subprocess.run(["bash", str(SCRIPT), "0", "1"], env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=60)
    text = log.read_text()
    assert text.startswith("an earlier campaign's line\n")
    assert f"{tmp_path / 'runs'}/toy/rebalance/seed0/checkpoint.pt" in text  # the run's own output
    assert "error: group 'white' is essentially absent" in text and "failed: rebalance on toy seed 1" in text


def test_base_method_picks_another_campaign_run_as_the_base(tmp_path: Path) -> None:
    mbstd = tmp_path / "runs" / "toy" / "mbstd" / "seed0"
    mbstd.mkdir(parents=True)
    (mbstd / "checkpoint.pt").touch()
    code, calls, _ = _campaign(tmp_path, ["0"], BASE_METHOD="mbstd", SETS="minibatch_std=true")
    assert code == 0 and f"--base {mbstd / 'checkpoint.pt'}" in calls[0] and "--set minibatch_std=true" in calls[0]
