"""Make every figure of a report and list them in the result's sidecar (`seed0.json` -> `seed0.report.json`,
paths relative to the result's folder); the result file itself is never rewritten."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fairbench.errors import FairbenchError
from fairbench.report.condition_heatmap import has_conditions, save_condition_heatmap
from fairbench.report.group_quality import save_group_quality
from fairbench.report.sample_grids import save_group_grids
from fairbench.report.share_bars import save_share_bars
from fairbench.report.source import find_result, judged_samples, load_result, scored_submission
from fairbench.results.sidecar import LEGACY_REPORT_KEY, read_report_index, write_report_index

REPORT_KEY = LEGACY_REPORT_KEY  # the result field older reports listed their figures under; read, never written


@dataclass(frozen=True)
class ReportFiles:
    result: Path
    shares: Path
    conditions: Path | None  # None for unconditional tasks
    samples: dict[str, Path] = field(default_factory=dict)  # judged group -> grid; empty with samples=False
    no_samples_because: str | None = None  # why grids were asked for and not drawn (the submission is gone)
    quality: Path | None = None  # quality per judged group; None for results that record none beyond the FID

    def listing(self) -> dict[str, object]:
        """The sidecar's figures: file names relative to the result's folder."""
        base = self.result.parent

        def rel(p: Path) -> str:
            return p.relative_to(base).as_posix()

        listing = {
            "shares": rel(self.shares),
            "conditions": rel(self.conditions) if self.conditions else None,
            "samples": {g: rel(p) for g, p in self.samples.items()},
        }
        if self.quality is not None:  # absent, not null: an older result's listing is written as it was
            listing["quality"] = rel(self.quality)
        return listing


def make_report(
    target: Path, samples: bool = True, per_row: int = 10, device: str = "cpu", samples_if_scored: bool = False
) -> ReportFiles:
    """Figures beside the result found from `target` (a result JSON or a run folder), listed in its sidecar;
    returns their paths.

    With `samples`, the scored images are reproduced (see `fairbench.report.source`) for the sample grids. A
    result outlives its checkpoint (committed results, a deleted run folder), so when they cannot be reproduced
    every other chart is still drawn and `no_samples_because` says why the grids were not. Grids drawn by an
    earlier report stay listed while their files are there. `samples_if_scored` is the same without the
    reason: a whole board is rebuilt in one pass while only some checkpoints remain.
    """
    path = find_result(Path(target))
    result = load_result(path)
    submission = None
    if samples_if_scored:
        submission = scored_submission(result, path)
        samples = submission is not None
    judged, because = None, None
    if samples:
        try:
            judged = judged_samples(result, path, device, submission)
        except FairbenchError as exc:  # before anything is written, so the other charts are still drawn
            because = str(exc)
    stem = path.with_suffix("")
    shares = save_share_bars(result, stem.with_name(f"{stem.name}.shares.png"))
    conditions = (
        save_condition_heatmap(result, stem.with_name(f"{stem.name}.conditions.png")) if has_conditions(result) else None
    )
    quality = save_group_quality(result, stem.with_name(f"{stem.name}.quality.png"))
    grids = save_group_grids(result, judged, stem, per_row) if judged is not None else _earlier_grids(result, path)
    if because is not None:
        because += "; drew the other charts" + (", kept the earlier grids" if grids else "")
    files = ReportFiles(path, shares, conditions, grids, because, quality)
    write_report_index(path, result, files.listing())
    return files


def _earlier_grids(result: dict, path: Path) -> dict[str, Path]:
    """The sample grids the result's sidecar (or an older result's `report` field) lists whose files are still
    beside it."""
    listed = read_report_index(path, result).get("samples") or {}
    kept = {group: path.parent / name for group, name in listed.items() if isinstance(name, str)}
    return {group: file for group, file in kept.items() if file.is_file()}
