"""`fairbench report`: figures a person reads beside a result JSON (one module per figure kind).

- `source`: find the result and, for the sample grids, the images it was scored on (re-sampled from the
  checkpoint with the task's seeded sampler, or the image set as submitted) and judge them;
- `sample_grids`: one PNG per judged group, a row per condition, each row labelled with its judged share;
- `share_bars`: observed and corrected group shares with their 95% intervals and the uniform line;
- `condition_heatmap`: per-condition shares of a conditional task, observed and corrected;
- `group_quality`: per judged group, FID beside the feature network's floor, PRDC and the Vendi score;
- `tradeoff`: per task, every entry's fairness against its quality, with the fair and the real references;
- `build`: runs them and lists the files in the result JSON (rewritten atomically) under `report`.
"""

from __future__ import annotations

from fairbench.report.build import REPORT_KEY, ReportFiles, make_report

__all__ = ["REPORT_KEY", "ReportFiles", "make_report"]
