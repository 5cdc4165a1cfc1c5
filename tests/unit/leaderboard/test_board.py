"""Leaderboard: aggregation against numpy, ranking by direction, refusals, rendering and determinism."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fairbench.errors import FairbenchError
from fairbench.leaderboard import (
    build_leaderboard,
    read_result,
    read_results,
    render_csv,
    render_html,
    render_markdown,
    write_leaderboard,
)
from tests.helpers import FIXTURE_DIR

HASH_A = "a" * 64
HASH_B = "b" * 64

# Direction of each metric used below.
HIB = {"kl_uniform_corrected": False, "kl_uniform": False, "fd_l1": False, "accuracy_like": True}


def make_result(
    task: str = "digits-bicolor",
    method: str | None = "vanilla",
    seed: int | None = 0,
    metrics: dict[str, float | None] | None = None,
    task_hash: str = HASH_A,
    submission_name: str | None = None,
    train: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    metrics = {"kl_uniform_corrected": 0.1, "kl_uniform": 0.2} if metrics is None else metrics
    name = submission_name or method or "images"
    default_train = {"steps": 100, "wall_time_s": 2.0, "device": "cpu"}
    data: dict[str, Any] = {
        "schema": "fairbench-result/1",
        "task": task,
        "task_version": 1,
        "task_hash": task_hash,
        "method": method,
        "submission": {"kind": "checkpoint" if method else "npz", "name": name, "path": "x", "sha256": "0" * 64},
        "seed": seed,
        "train": train if train is not None else (default_train if method else None),
        "n_samples": 1000,
        "groups": ["black", "white"],
        "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        "metrics": {
            k: {"value": v, "ci95": None if v is None else [v - 0.01, v + 0.01], "higher_is_better": HIB.get(k, False)}
            for k, v in metrics.items()
        },
        "per_condition": None,
        "judge": {"id": "j", "sha256": "1" * 64, "accuracy": 0.99, "confusion": [[0.99, 0.01], [0.01, 0.99]]},
        "feature_network": None,
        "versions": {"fairbench": "0.1.0"},
        "created": "2026-11-23T05:00:00+00:00",
        "elapsed_s": 1.0,
    }
    data.update(overrides)
    return data


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in make_result().items() if k != key}


def put(root: Path, data: Any, name: str | None = None) -> Path:
    if name is None:
        entry = data["method"] or data["submission"]["name"]
        name = f"{data['task']}/{entry}/seed{data['seed']}.json"
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def boards_for(root: Path, primary: str | None = None):
    return build_leaderboard(read_results(root), primary)


def row_of(board, entry):
    return next(r for r in board.rows if r.entry == entry)


def md_cells(line: str) -> list[str]:
    """A Markdown table row's cells (an escaped pipe `\\|` stays inside its cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def md_table(md: str, task: str | None = None) -> list[dict[str, str]]:
    """The rows of the board table (of `task`, else the first) as {header: cell}."""
    section = md.split(f"## {task} (")[1] if task else md
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| rank |"))
    header = md_cells(lines[start])
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, md_cells(line))))
    return rows


# ------------------------------------------------------------------------------------------- aggregation


def test_mean_and_sample_std_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    kl = rng.random(4)
    fd = rng.random(4)
    for seed in range(4):
        put(tmp_path, make_result(seed=seed, metrics={"kl_uniform_corrected": kl[seed], "fd_l1": fd[seed]},
                                  train={"steps": 250, "wall_time_s": float(seed)}))
    (board,) = boards_for(tmp_path)
    row = row_of(board, "vanilla")
    assert row.n_runs == 4 and row.seeds == (0, 1, 2, 3)
    for name, values in (("kl_uniform_corrected", kl), ("fd_l1", fd)):
        s = row.metrics[name]
        assert s.n == 4
        assert s.mean == pytest.approx(float(np.mean(values)), rel=1e-12)
        assert s.std == pytest.approx(float(np.std(values, ddof=1)), rel=1e-12)
    assert row.train_steps == pytest.approx(250.0)
    assert row.train_wall_time_s == pytest.approx(1.5)


def test_single_run_has_no_std(tmp_path: Path) -> None:
    put(tmp_path, make_result(seed=7, metrics={"kl_uniform_corrected": 0.25}))
    (board,) = boards_for(tmp_path)
    s = board.rows[0].metrics["kl_uniform_corrected"]
    assert (s.mean, s.std, s.n) == (0.25, None, 1)
    md = render_markdown([board])
    # rank, entry († < 3 runs), primary metric, judged shares, then runs, seeds and the training budget
    assert "| 1 | vanilla † | 0.250 | black 50.0, white 50.0 | 1 | 7 | 100 | 2.0 |" in md.splitlines()
    assert "from 1 result file; do not edit." in md


def test_image_set_entry_uses_submission_name(tmp_path: Path) -> None:
    put(tmp_path, make_result(method=None, seed=None, submission_name="my-diffusion"))
    (board,) = boards_for(tmp_path)
    assert board.rows[0].entry == "my-diffusion"
    assert board.rows[0].seeds == (None,)
    assert board.rows[0].train_steps is None


# ------------------------------------------------------------------------------------------- ranking


def test_ranks_follow_direction_and_equal_runs_share_a_rank(tmp_path: Path) -> None:
    values = {  # entry -> (kl (lower better), accuracy_like (higher better)); three tightly spread seeds each
        "a": (0.30, 0.5),
        "b": (0.10, 0.9),
        "c": (0.10, 0.7),
        "d": (0.50, 0.9),
    }
    jitter = (-0.001, 0.0, 0.001)
    for entry, (kl, acc) in values.items():
        for seed, j in enumerate(jitter):
            put(tmp_path, make_result(method=entry, seed=seed,
                                      metrics={"kl_uniform_corrected": kl + j, "accuracy_like": acc + j}))
    (board,) = boards_for(tmp_path)
    assert board.primary_metric == "kl_uniform_corrected"
    assert board.higher_is_better == {"kl_uniform_corrected": False, "accuracy_like": True}
    ranks_kl = {r.entry: r.rank["kl_uniform_corrected"] for r in board.rows}
    ranks_acc = {r.entry: r.rank["accuracy_like"] for r in board.rows}
    assert ranks_kl == {"b": 1, "c": 1, "a": 3, "d": 4}
    assert ranks_acc == {"b": 1, "d": 1, "c": 3, "a": 4}
    # rows by primary rank, then mean, ties broken by entry name
    assert [r.entry for r in board.rows] == ["b", "c", "a", "d"]

    # a higher-is-better primary metric reorders the rows
    (board2,) = boards_for(tmp_path, primary="accuracy_like")
    assert board2.metric_names[0] == "accuracy_like"
    assert [r.entry for r in board2.rows] == ["b", "d", "c", "a"]


def test_differences_within_seed_noise_share_a_rank(tmp_path: Path) -> None:
    """Issue 9: with 3 seeds, 0.564 ± 0.224 is not better than 0.693 ± 0.000; rows of one rank go by mean."""
    for seed, value in enumerate([0.6931471805599453, 0.6931471805599453, 0.3056214884488655]):
        put(tmp_path, make_result(method="repfair", seed=seed, metrics={"kl_uniform_corrected": value}))
    for seed in range(3):
        put(tmp_path, make_result(method="vanilla", seed=seed, metrics={"kl_uniform_corrected": 0.6931471805599453}))
    for seed, value in enumerate([0.05, 0.06, 0.07]):
        put(tmp_path, make_result(method="clear", seed=seed, metrics={"kl_uniform_corrected": value}))
    (board,) = boards_for(tmp_path)
    s = row_of(board, "repfair").metrics["kl_uniform_corrected"]
    assert (round(s.mean, 3), round(s.std, 3)) == (0.564, 0.224)
    # repfair ~ vanilla (p = 0.42). clear (0.06 ± 0.01) beats both: all three of repfair's seeds are >= 0.31,
    # which under equal means (repfair at clear's level, where its spread of sqrt(KL) is small) is far off.
    # So: clear 1, repfair and vanilla 2, each of them 2nd or 3rd.
    assert {r.entry: r.rank["kl_uniform_corrected"] for r in board.rows} == {"clear": 1, "repfair": 2, "vanilla": 2}
    assert {r.entry: r.rank_interval["kl_uniform_corrected"] for r in board.rows} == {
        "clear": (1, 1), "repfair": (2, 3), "vanilla": (2, 3)}
    assert [r.entry for r in board.rows] == ["clear", "repfair", "vanilla"]
    md = render_markdown([board])
    # one format for the column: three decimals show the smallest std (0.010) to two significant digits
    assert "| 1 | clear | 0.060 ± 0.010 |" in md
    assert "| 2 (2–3) | repfair | 0.564 ± 0.224 |" in md
    assert "| 2 (2–3) | vanilla | 0.693 ± 0.000 |" in md
    assert "†" not in md.split("## ")[1]  # three runs each: no entry flagged


def test_archived_board_ranks_repfair_and_vanilla_alike() -> None:
    # The example: 0.564 +- 0.224 over 3 seeds is not "better" than 0.693 +- 0.000.
    archive = FIXTURE_DIR / "board" / "archive" / "dcgan-conditional-4k"
    (board,) = boards_for(archive)
    assert board.task == "mnist-bicolor-imbalanced"
    assert {r.entry: r.rank["kl_uniform_corrected"] for r in board.rows} == {"repfair": 1, "vanilla": 1}


def test_default_primary_without_kl_corrected_is_first_sorted(tmp_path: Path) -> None:
    put(tmp_path, make_result(metrics={"fd_l1": 0.1, "accuracy_like": 0.2}))
    (board,) = boards_for(tmp_path)
    assert board.primary_metric == "accuracy_like"
    assert board.metric_names == ("accuracy_like", "fd_l1")


def test_default_primary_without_corrected_metrics_is_observed_kl(tmp_path: Path) -> None:
    # ffhq-race's judge has no confusion matrix, so its results carry no corrected metrics
    put(tmp_path, make_result(metrics={"fd_l1": 0.1, "kl_uniform": 0.2, "accuracy_like": 0.3}))
    (board,) = boards_for(tmp_path)
    assert board.primary_metric == "kl_uniform"


def test_unknown_primary_metric_names_known_ones(tmp_path: Path) -> None:
    put(tmp_path, make_result())
    with pytest.raises(FairbenchError, match=r"unknown primary metric 'nope'.*kl_uniform, kl_uniform_corrected"):
        boards_for(tmp_path, primary="nope")


def test_tasks_sorted_by_id(tmp_path: Path) -> None:
    put(tmp_path, make_result(task="zeta"))
    put(tmp_path, make_result(task="alpha", task_hash=HASH_B))  # different tasks may have different hashes
    assert [b.task for b in boards_for(tmp_path)] == ["alpha", "zeta"]


# ------------------------------------------------------------------------------------------- refusals


def test_refuses_mixed_task_hashes(tmp_path: Path) -> None:
    fa = put(tmp_path, make_result(method="x", task_hash=HASH_A))
    fb = put(tmp_path, make_result(method="y", task_hash=HASH_B))
    with pytest.raises(FairbenchError) as info:
        boards_for(tmp_path)
    msg = str(info.value)
    assert "digits-bicolor" in msg and HASH_A[:12] in msg and HASH_B[:12] in msg
    assert str(fa) in msg and str(fb) in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("field", "other", "what"),
    [
        ("task_version", 2, "task versions"),
        ("n_samples", 500, "sample counts"),
        ("feature_network", {"id": "inception", "sha256": "c" * 64}, "feature networks"),
        # a user-supplied judge (ffhq-race's FairFace file) is not pinned by the task hash: its sha256 decides
        ("judge", {"id": "j", "sha256": "2" * 64, "accuracy": None, "confusion": None}, r"judge weights"),
    ],
)
def test_refuses_other_mixes_within_a_task(tmp_path: Path, field: str, other: Any, what: str) -> None:
    put(tmp_path, make_result(method="x"))
    put(tmp_path, make_result(method="y", **{field: other}))
    with pytest.raises(FairbenchError, match=f"different {what}"):
        boards_for(tmp_path)


def test_method_and_same_named_image_set_are_refused(tmp_path: Path) -> None:
    put(tmp_path, make_result(method="repfair", seed=0))
    put(tmp_path, make_result(method=None, seed=None, submission_name="repfair"))
    with pytest.raises(FairbenchError, match="names both a method"):
        boards_for(tmp_path)


def test_feature_network_in_header(tmp_path: Path) -> None:
    put(tmp_path, make_result(feature_network={"id": "lenet-digits", "sha256": "d" * 64}))
    md = render_markdown(boards_for(tmp_path))
    assert "feature network: lenet-digits (dddddddddddd)" in md


def test_missing_metric_is_missing_not_averaged(tmp_path: Path) -> None:
    put(tmp_path, make_result(method="full", seed=0, metrics={"kl_uniform_corrected": 0.1, "fd_l1": 0.3}))
    put(tmp_path, make_result(method="full", seed=1, metrics={"kl_uniform_corrected": 0.2, "fd_l1": 0.5}))
    put(tmp_path, make_result(method="partial", seed=0, metrics={"kl_uniform_corrected": 0.05, "fd_l1": 0.01}))
    put(tmp_path, make_result(method="partial", seed=1, metrics={"kl_uniform_corrected": 0.06}))
    put(tmp_path, make_result(method="nulled", seed=0, metrics={"kl_uniform_corrected": 0.5, "fd_l1": None}))
    (board,) = boards_for(tmp_path)
    partial = row_of(board, "partial").metrics["fd_l1"]
    assert partial.mean is None and partial.std is None and partial.n == 1
    assert row_of(board, "partial").rank["fd_l1"] is None
    assert row_of(board, "nulled").metrics["fd_l1"].mean is None
    assert row_of(board, "full").rank["fd_l1"] == 1  # partial's 0.01 would otherwise win
    assert row_of(board, "partial").rank["kl_uniform_corrected"] == 1

    md = render_markdown([board])
    partial_line = next(line for line in md.splitlines() if "| partial † |" in line)
    assert partial_line.count("—") == 1 and "0.01" not in partial_line

    frame = pd.read_csv(io.StringIO(render_csv([board])))
    p = frame.set_index("entry").loc["partial"]
    assert pd.isna(p["fd_l1_mean"]) and pd.isna(p["fd_l1_std"]) and pd.isna(p["fd_l1_rank"])
    assert p["fd_l1_n"] == 1


def test_duplicate_entry_seed_is_refused(tmp_path: Path) -> None:
    f1 = put(tmp_path, make_result(seed=3), name="run1.json")
    f2 = put(tmp_path, make_result(seed=3), name="sub/run2.json")
    with pytest.raises(FairbenchError, match="duplicate result") as info:
        boards_for(tmp_path)
    assert str(f1) in str(info.value) and str(f2) in str(info.value)


def test_conflicting_direction_is_refused(tmp_path: Path) -> None:
    put(tmp_path, make_result(method="x"))
    bad = make_result(method="y")
    bad["metrics"]["kl_uniform"]["higher_is_better"] = True
    put(tmp_path, bad)
    with pytest.raises(FairbenchError, match="conflicting directions"):
        boards_for(tmp_path)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**make_result(), "schema": "something-else/2"}), "schema"),
        (json.dumps(without("task_hash")), "missing required field 'task_hash'"),
        (json.dumps(without("metrics")), "missing required field 'metrics'"),
        (json.dumps({**make_result(), "seed": "zero"}), "'seed'"),
        (json.dumps({**make_result(), "metrics": {"kl": {"value": 0.1}}}), "higher_is_better"),
        (json.dumps({**make_result(), "task_hash": "abc"}), "task_hash"),
        (json.dumps({**make_result(method=None), "submission": None}), "submission.name"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, content: str, problem: str) -> None:
    put(tmp_path, make_result(method="good"))
    bad = put(tmp_path, content, name="bad/result.json")
    with pytest.raises(FairbenchError) as info:
        read_results(tmp_path)
    msg = str(info.value)
    assert str(bad) in msg and problem in msg
    assert "\n" not in msg


def test_empty_results_dir(tmp_path: Path) -> None:
    (tmp_path / ".tmp.json").write_text("{half", encoding="utf-8")  # hidden temp files are ignored
    with pytest.raises(FairbenchError, match=f"^no result files in {tmp_path}$"):
        read_results(tmp_path)
    with pytest.raises(FairbenchError, match="no result files"):
        write_leaderboard(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------- rendering


def _populate(root: Path) -> None:
    rng = np.random.default_rng(0)
    for task, h in (("mnist-bicolor", HASH_A), ("digits-bicolor", HASH_B)):
        for method in ("vanilla", "repfair", "rebalance"):
            for seed in range(3):
                metrics = {
                    "kl_uniform_corrected": float(rng.random()),
                    "kl_uniform": float(rng.random()),
                    "accuracy_like": float(rng.random() * 100),
                }
                put(root, make_result(task=task, task_hash=h, method=method, seed=seed, metrics=metrics))
        put(root, make_result(task=task, task_hash=h, method=None, seed=None, submission_name="images|v2",
                              metrics={"kl_uniform_corrected": 0.5}))


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _populate(results)
    csv1, md1 = write_leaderboard(results, tmp_path / "out1")
    csv2, md2 = write_leaderboard(results, tmp_path / "out2")
    assert (csv1.name, md1.name) == ("leaderboard.csv", "leaderboard.md")
    assert csv1.read_bytes() == csv2.read_bytes()
    assert md1.read_bytes() == md2.read_bytes()
    # and in place: a second run over the same output folder changes nothing
    before = (csv1.read_bytes(), md1.read_bytes())
    write_leaderboard(results, tmp_path / "out1")
    assert (csv1.read_bytes(), md1.read_bytes()) == before
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["leaderboard.csv", "leaderboard.md"]


def test_markdown_layout(tmp_path: Path) -> None:
    _populate(tmp_path)
    boards = boards_for(tmp_path)
    md = render_markdown(boards)
    assert "Generated by `fairbench leaderboard` from 20 result files; do not edit." in md
    first = md.index("## digits-bicolor (v1, hash `bbbbbbbbbbbb`)")
    assert first < md.index("## mnist-bicolor (v1, hash `aaaaaaaaaaaa`)")
    header = next(line for line in md.splitlines() if line.startswith("| rank |"))
    # Markdown leads with rank, entry, the primary metric and the judged shares, then the other headline
    # metrics under human headers; the CSV keeps all of them.
    expected = "| rank | entry | KL to uniform (corrected) ↓ | judged shares (%) | runs | seeds | KL to uniform (observed) ↓ |"
    assert header.startswith(expected)
    assert "accuracy_like" not in header
    # a key under the table names the raw metric behind each header
    assert "Key: KL to uniform (corrected) = `kl_uniform_corrected`; KL to uniform (observed) = `kl_uniform`." in md
    assert "2 of 3 metrics shown; all are in leaderboard.csv." in md
    assert "accuracy_like_mean" in render_csv(boards)
    assert "train steps" in header and "train time (s)" in header
    assert "images\\|v2" in md  # pipes in names are escaped
    board = boards[0]
    top = board.rows[0]
    cells = md_table(md, board.task)[0]
    assert (cells["rank"], cells["entry"], cells["runs"], cells["seeds"]) == ("1 (1–4)", top.entry, "3", "0, 1, 2")
    s = top.metrics["kl_uniform_corrected"]
    mean, std = cells["KL to uniform (corrected) ↓"].split(" ± ")
    decimals = len(mean.split(".")[1])
    assert len(std.split(".")[1]) == decimals and abs(float(mean) - s.mean) <= 0.5 * 10**-decimals
    image = next(r for r in md_table(md, board.task) if r["entry"].startswith("images"))
    assert (image["runs"], image["seeds"]) == ("1", "—")  # one run, no seeds
    assert "2026" not in md  # no timestamps


def test_csv_round_trips_numbers(tmp_path: Path) -> None:
    _populate(tmp_path)
    boards = boards_for(tmp_path)
    frame = pd.read_csv(io.StringIO(render_csv(boards)), dtype={"seeds": str})
    assert list(frame.columns[:6]) == ["task", "task_version", "task_hash", "entry", "n_runs", "seeds"]
    assert len(frame) == sum(len(b.rows) for b in boards)
    for board in boards:
        for row in board.rows:
            line = frame[(frame.task == board.task) & (frame.entry == row.entry)]
            assert len(line) == 1
            line = line.iloc[0]
            assert line["task_hash"] == board.task_hash
            assert line["n_runs"] == row.n_runs
            expected_seeds = ";".join(str(s) for s in row.seeds if s is not None)
            assert (line["seeds"] if isinstance(line["seeds"], str) else "") == expected_seeds
            for name in board.metric_names:
                s = row.metrics[name]
                for col, value in ((f"{name}_mean", s.mean), (f"{name}_std", s.std)):
                    if value is None:
                        assert pd.isna(line[col])
                    else:
                        assert line[col] == value  # exact: CSV floats round-trip
                assert line[f"{name}_n"] == s.n
                rank = row.rank[name]
                assert pd.isna(line[f"{name}_rank"]) if rank is None else line[f"{name}_rank"] == rank
    # the image-set entry lacks accuracy_like: empty cells, not zeros
    img = frame[(frame.task == "digits-bicolor") & (frame.entry == "images|v2")].iloc[0]
    assert pd.isna(img["accuracy_like_mean"]) and img["accuracy_like_n"] == 0


def test_feature_network_metrics_carry_the_network_in_their_columns(tmp_path: Path) -> None:
    fn_a = {"id": "domain-mnist", "sha256": "a" * 64}
    fn_b = {"id": "inception", "sha256": "b" * 64}
    for seed in range(2):
        put(tmp_path, make_result(task="mnist-bicolor", task_hash=HASH_A, method="vanilla", seed=seed,
                                  metrics={"kl_uniform_corrected": 0.1, "fid": 3.0 + seed}, feature_network=fn_a))
        put(tmp_path, make_result(task="digits-bicolor", task_hash=HASH_B, method="vanilla", seed=seed,
                                  metrics={"kl_uniform_corrected": 0.2, "fid": 30.0 + seed}, feature_network=fn_b))
    boards = boards_for(tmp_path)
    md = render_markdown(boards)
    assert "| FID (domain-mnist) ↓ |" in md and "| FID (inception) ↓ |" in md  # the header names the network
    assert "= `fid@domain-mnist`" in md and "= `fid@inception`" in md  # ... and the key the raw column
    frame = pd.read_csv(io.StringIO(render_csv(boards)))
    # never one column holding values from two networks
    assert "fid_mean" not in frame.columns
    mnist = frame[frame.task == "mnist-bicolor"].iloc[0]
    digits = frame[frame.task == "digits-bicolor"].iloc[0]
    assert mnist["fid@domain-mnist_mean"] == pytest.approx(3.5) and pd.isna(mnist["fid@inception_mean"])
    assert digits["fid@inception_mean"] == pytest.approx(30.5) and pd.isna(digits["fid@domain-mnist_mean"])


def _formatted(cells: list[tuple[float | None, float | None]]) -> list[str]:
    from fairbench.leaderboard.columns import column_format

    fmt = column_format(cells)
    return [fmt.cell(mean, std, "—") for mean, std in cells]


def test_one_number_format_per_column_from_its_spread() -> None:
    # The committed mnist-bicolor column that mixed "4.050e-05 ± 0.000" and "0.04887 ± 0.002539": one fixed
    # format, five decimals, so the tiny groupcond value is not 0 and every cell has the same decimals.
    assert _formatted([(4.05e-05, 0.0), (0.0006847, None), (0.04887, 0.002539), (0.6931, 0.0)]) == [
        "0.00004 ± 0.00000", "0.00068", "0.04887 ± 0.00254", "0.69310 ± 0.00000"]
    # FID-like: the smallest std (0.37) to two significant digits; a single run has no std
    assert _formatted([(5.548, 0.374), (20.07, None), (39.12, 3.047)]) == ["5.55 ± 0.37", "20.07", "39.12 ± 3.05"]
    # entries apart by more than their stds are told apart; ones within a std need not be
    assert _formatted([(0.1231, None), (0.1236, None)]) == ["0.1231", "0.1236"]
    assert _formatted([(0.1231, 0.05), (0.1236, 0.05)]) == ["0.123 ± 0.050", "0.124 ± 0.050"]
    # a lone value keeps three significant digits; a missing cell stays missing; -0.0 reads 0
    assert _formatted([(0.1234, None), (None, None)]) == ["0.123", "—"]
    assert _formatted([(-0.0, None), (0.5, 0.1)]) == ["0.000", "0.500 ± 0.100"]


def test_tiny_and_large_columns_share_one_exponent() -> None:
    tiny = _formatted([(1.2e-5, 3e-7), (4.5e-6, 1e-7), (0.0, 0.0)])
    assert tiny == ["1.200e-05 ± 0.030e-05", "0.450e-05 ± 0.010e-05", "0.000e-05 ± 0.000e-05"]
    assert _formatted([(1.23e8, 2.3e6), (9.8e7, 1.2e6)]) == ["1.230e+08 ± 0.023e+08", "0.980e+08 ± 0.012e+08"]
    # large but below a million: fixed point, no decimals beyond what the spread needs
    assert _formatted([(123456.7, 2345.6), (98765.4, 1234.5)]) == ["123457 ± 2346", "98765 ± 1234"]
    # float noise (ln 2 computed two ways) does not ask for 16 decimals
    assert _formatted([(0.6931471805599453, 0.0), (0.6931471805599451, None)]) == ["0.693 ± 0.000", "0.693"]


def test_header_says_how_ranks_are_decided(tmp_path: Path) -> None:
    put(tmp_path, make_result())
    md = render_markdown(boards_for(tmp_path))
    head = " ".join(md.split("## ")[0].split())  # the header, lines joined
    for phrase in (
        "an entry's rank is 1 + the number of entries shown better than it by the primary metric",
        "its rank interval: from the rank to the number of entries less those shown worse",
        "Holm's correction over all pairs of entries at a family-wise error rate of 0.05",
        "uses both the spread across training seeds and each run's own sampling uncertainty",
        "never less than their within-run variance read off each run's 95% interval",
        "An entry with fewer than 2 runs is compared with no other",
        "Entries not shown to differ share a rank",
        "† marks an entry with fewer than 3 runs",
        "it is never averaged over the runs that have it, and it gets no rank",
    ):
        assert phrase in head, phrase


def test_entries_with_fewer_than_three_runs_are_flagged(tmp_path: Path) -> None:
    for seed in range(3):
        put(tmp_path, make_result(method="three", seed=seed, metrics={"kl_uniform_corrected": 0.1 + seed / 100}))
    for seed in range(2):
        put(tmp_path, make_result(method="two", seed=seed, metrics={"kl_uniform_corrected": 0.5 + seed / 100}))
    put(tmp_path, make_result(method=None, seed=None, submission_name="images", metrics={"kl_uniform_corrected": 0.0}))
    boards = boards_for(tmp_path)
    assert {r.entry: r.few_seeds for r in boards[0].rows} == {"three": False, "two": True, "images": True}
    md = render_markdown(boards)
    lines = md.splitlines()
    rows = {r["entry"]: (r["rank"], r["runs"], r["seeds"]) for r in md_table(md)}
    assert rows["three"] == ("1 (1–2)", "3", "0, 1, 2")  # images could be anywhere
    assert rows["two †"] == ("2 (2–3)", "2", "0, 1")  # three beats two: p < 0.05
    assert rows["images †"] == ("1 (1–3)", "1", "—")  # one run: never beaten or beating, unranked
    assert lines[0] == "# fairbench leaderboard"
    board_part = md.split("## ")[1]
    assert "† fewer than 3 runs (training seeds)" in board_part
    frame = pd.read_csv(io.StringIO(render_csv(boards)))
    assert list(frame.columns[4:7]) == ["n_runs", "seeds", "few_seeds"]
    assert frame.set_index("entry")["few_seeds"].to_dict() == {"three": False, "two": True, "images": True}


def test_no_flag_note_when_every_entry_has_three_runs(tmp_path: Path) -> None:
    for seed in range(3):
        put(tmp_path, make_result(seed=seed))
    md = render_markdown(boards_for(tmp_path))
    assert "† fewer than" not in md and "†" not in md.split("## ")[1]


def test_new_metrics_and_unknown_fields_are_read(tmp_path: Path) -> None:
    """Result files grow debiased KLs and the non-metric `fairness_tests` / `group_shares`: the parser ignores
    unknown top-level fields, the debiased KL is a headline metric, and the primary stays the plug-in."""
    names = [f"kl_uniform{c}_debiased{v}" for c in ("", "_corrected") for v in ("", "_cond_mean", "_cond_worst")]
    for seed in range(3):
        data = make_result(seed=seed, metrics={"kl_uniform_corrected": 0.1, "kl_uniform": 0.2,
                                               **{n: 0.05 + seed / 100 for n in names}})
        data["fairness_tests"] = {"uniform": {"statistic": 1.0, "p_value": 0.3}, "uniform_corrected": {"p_value": 0.2}}
        data["group_shares"] = {"black": {"count": 500, "observed": {"value": 0.5, "ci95": [0.48, 0.52]}}}
        data["something_new"] = [1, 2, 3]
        put(tmp_path, data)
    rec = read_results(tmp_path)[0]
    assert set(rec.metrics) == {"kl_uniform_corrected", "kl_uniform", *names}
    (board,) = boards_for(tmp_path)
    assert board.primary_metric == "kl_uniform_corrected"
    header = next(line for line in render_markdown([board]).splitlines() if line.startswith("| rank |"))
    assert "| KL to uniform (corrected, debiased) ↓ | KL to uniform (observed) ↓ |" in header
    assert "(observed, debiased)" not in header  # only the corrected one is a headline metric
    frame = pd.read_csv(io.StringIO(render_csv([board])))
    for name in names:
        assert frame.loc[0, f"{name}_mean"] == pytest.approx(0.06) and frame.loc[0, f"{name}_rank"] == 1


def test_per_seed_lists_every_run(tmp_path: Path) -> None:
    results = tmp_path / "results"
    _populate(results)
    plain_csv, plain_md = write_leaderboard(results, tmp_path / "plain")
    csv_path, md_path = write_leaderboard(results, tmp_path / "seeds", per_seed=True)
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == ["leaderboard.csv", "leaderboard.md"]
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == [
        "leaderboard.csv", "leaderboard.md", "leaderboard_runs.csv"]
    assert csv_path.read_bytes() == plain_csv.read_bytes()
    md, plain = md_path.read_text(), plain_md.read_text()
    # the per-run sections are additions only: removing them gives the plain board back
    assert md.count(": per-run values\n") == 2 and ": per-run values\n" not in plain
    assert re.sub(r"\n\n### [^\n]*: per-run values\n\n(?:\|[^\n]*\n)*\|[^\n]*", "", md) == plain
    boards = boards_for(results)
    assert md == render_markdown(boards, per_seed=True) and plain == render_markdown(boards)
    for board in boards:
        section = md.split(f"### {board.task}: per-run values")[1].split("## ")[0]
        rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| entry")]
        assert len(rows) == board.n_results
        assert section.splitlines()[2].startswith("| entry | seed | KL to uniform (corrected) ↓ | KL to uniform (observed) ↓ |")
        lines = [md_cells(line) for line in rows]
        decimals = {len(cells[2].split(".")[1]) for cells in lines}
        assert len(decimals) == 1  # one format for the column
        for row in board.rows:
            for run in row.runs:
                kl = run.metrics["kl_uniform_corrected"].value
                seed = "—" if run.seed is None else str(run.seed)
                name = row.entry.replace("|", "\\|") + (" †" if row.few_seeds else "")
                cells = next(c for c in lines if c[:2] == [name, seed])
                assert abs(float(cells[2]) - kl) <= 0.5 * 10 ** -min(decimals)
    image_row = md_cells(next(line for line in md.splitlines() if line.startswith("| images\\|v2 † | — |")))
    assert float(image_row[2]) == pytest.approx(0.5) and image_row[3] == "—"  # no kl_uniform: missing, not hidden

    runs = pd.read_csv(tmp_path / "seeds" / "leaderboard_runs.csv")
    assert len(runs) == 20  # one row per result file
    assert list(runs.columns[:7]) == ["task", "task_version", "task_hash", "entry", "seed", "few_seeds", "file"]
    files = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.json"))
    assert sorted(runs["file"]) == files
    for rec in read_results(results):
        line = runs[runs["file"] == rec.path.relative_to(results).as_posix()].iloc[0]
        for name, metric in rec.metrics.items():  # every metric, full precision
            assert line[name] == metric.value and line[f"{name}_ci95_low"] == metric.ci95[0]
    img = runs[runs["entry"] == "images|v2"].iloc[0]
    assert pd.isna(img["seed"]) and pd.isna(img["kl_uniform"]) and pd.isna(img["accuracy_like"])


def test_cli_per_seed_flag(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fairbench.cli import app

    results = tmp_path / "results"
    _populate(results)
    out = tmp_path / "board"
    plain = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(out)])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip().splitlines()[-2:] == [str(out / "leaderboard.csv"), str(out / "leaderboard.md")]
    assert not (out / "leaderboard_runs.csv").exists()
    seeds = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(out), "--per-seed"])
    assert seeds.exit_code == 0, seeds.output
    assert seeds.stdout.strip().splitlines()[-3:] == [
        str(out / "leaderboard.csv"), str(out / "leaderboard.md"), str(out / "leaderboard_runs.csv")]
    assert "per-run values" in (out / "leaderboard.md").read_text()
    assert (out / "leaderboard_runs.csv").is_file()


# ------------------------------------------------------------------------------------------- IQA weights

W1 = {
    "eqface-backbone": hashlib.sha256(b"backbone 1").hexdigest(),
    "eqface-quality": hashlib.sha256(b"head 1").hexdigest(),
}
W2 = {**W1, "eqface-quality": hashlib.sha256(b"head 2").hexdigest()}  # another user's quality head
NIQE_W = {"niqe-modelparameters": hashlib.sha256(b"niqe").hexdigest()}


def eq_result(
    method: str, eqface: float | None, weights: dict[str, dict[str, str]] | None, niqe: float | None = None, **kw: Any
) -> dict[str, Any]:
    """A result with an eqface (and optionally niqe) value; `weights` None leaves iqa_weights out, as files
    written before the field did."""
    metrics = {"kl_uniform_corrected": 0.1, "eqface": eqface, **({"niqe": niqe} if niqe is not None else {})}
    data = make_result(method=method, metrics=metrics, **kw)
    data["metrics"]["eqface"]["higher_is_better"] = True
    if weights is not None:
        data["iqa_weights"] = weights
    return data


def test_result_json_round_trips_iqa_weights(tmp_path: Path) -> None:
    from fairbench.results import JudgeInfo, ScoreResult, Submission, write_result

    weights = {"eqface": W1, "niqe": NIQE_W}
    result = ScoreResult(
        task="digits-bicolor", task_version=1, task_hash=HASH_A, method="vanilla",
        submission=Submission("checkpoint", "vanilla", "x.pt", "0" * 64), seed=0, train=None, n_samples=100,
        sampling_seed=0, groups=["a", "b"], group_proportions={"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        group_counts=[50, 50], metrics={"eqface": {"value": 0.7, "ci95": [0.6, 0.8], "higher_is_better": True}},
        per_condition=None, judge=JudgeInfo("j", "1" * 64, 0.9, [[1.0, 0.0], [0.0, 1.0]]),
        bootstrap={"n_resamples": 10, "seed": 0}, versions={}, device="cpu", git_revision=None, created="t",
        elapsed_s=0.0, iqa_weights=weights,
    )
    path = write_result(tmp_path / "r.json", result)
    assert json.loads(path.read_text())["iqa_weights"] == weights
    assert read_result(path).iqa_weights == weights
    # a result with no IQA metric writes an empty object
    empty = write_result(tmp_path / "e.json", ScoreResult(**{**result.__dict__, "iqa_weights": {}}))
    assert json.loads(empty.read_text())["iqa_weights"] == {} and read_result(empty).iqa_weights == {}


def test_old_result_without_iqa_weights_still_loads(tmp_path: Path) -> None:
    old = put(tmp_path, eq_result("old", 0.5, None))
    assert "iqa_weights" not in json.loads(old.read_text())
    put(tmp_path, eq_result("new", 0.6, {"eqface": W1}))
    (board,) = boards_for(tmp_path)  # an unknown provenance never conflicts
    assert read_result(old).iqa_weights == {}
    assert row_of(board, "old").iqa_weights == {} and row_of(board, "new").iqa_weights == {"eqface": W1}
    assert board.iqa_weights == {"eqface": W1}
    # one run each: no spread across seeds to test against, so neither is shown to be better
    assert row_of(board, "new").rank["eqface"] == 1 and row_of(board, "old").rank["eqface"] == 1


def test_refuses_eqface_values_from_different_weights(tmp_path: Path) -> None:
    fa = put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    fb = put(tmp_path, eq_result("y", 0.8, {"eqface": W2}))
    with pytest.raises(FairbenchError) as info:
        boards_for(tmp_path)
    msg = str(info.value)
    assert "digits-bicolor" in msg and "'eqface'" in msg and "different weights" in msg
    assert W1["eqface-quality"][:12] in msg and W2["eqface-quality"][:12] in msg
    assert W1["eqface-quality"][:13] not in msg  # prefixes, not whole hashes
    assert str(fa) in msg and str(fb) in msg
    assert "\n" not in msg


def test_refuses_different_weights_between_seeds_of_one_entry(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}, seed=0))
    put(tmp_path, eq_result("x", 0.8, {"eqface": W2}, seed=1))
    with pytest.raises(FairbenchError, match="different weights for IQA metric 'eqface'"):
        boards_for(tmp_path)


def test_same_weights_are_compared(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    put(tmp_path, eq_result("y", 0.8, {"eqface": dict(reversed(list(W1.items())))}))  # key order is no difference
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W1}
    assert {r.entry: (r.metrics["eqface"].mean, r.rank["eqface"]) for r in board.rows} == {"x": (0.7, 1), "y": (0.8, 1)}


@pytest.mark.parametrize("missing", ["null value", "no metric"])
def test_a_run_without_an_eqface_value_does_not_conflict(tmp_path: Path, missing: str) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1, "niqe": NIQE_W}))
    other = eq_result("y", None, {"eqface": W2, "niqe": NIQE_W})  # computed once with W2, the value lost
    if missing == "no metric":
        del other["metrics"]["eqface"]
    put(tmp_path, other)
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W1}  # niqe has no value on this board
    assert row_of(board, "y").iqa_weights == {} and row_of(board, "y").metrics["eqface"].mean is None


def test_weights_of_other_tasks_never_conflict(tmp_path: Path) -> None:
    put(tmp_path, eq_result("x", 0.7, {"eqface": W1}))
    put(tmp_path, eq_result("x", 0.7, {"eqface": W2}, task="faces", task_hash=HASH_B))
    assert [b.iqa_weights["eqface"] for b in boards_for(tmp_path)] == [W1, W2]


@pytest.mark.parametrize(
    ("weights", "problem"),
    [
        ([], "field 'iqa_weights' must be an object"),
        ("eqface", "field 'iqa_weights' must be an object"),
        ({"eqface": "a" * 64}, "bad entry 'eqface'"),
        ({"eqface": ["a" * 64]}, "bad entry 'eqface'"),
        ({"eq face": {"eqface-backbone": "a" * 64}}, "bad entry 'eq face'"),
        ({"eqface": {"eqface-backbone": "abc"}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"eqface-backbone": "A" * 64}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"eqface-backbone": 7}}, "iqa_weights.eqface.eqface-backbone must be 64 lowercase hex"),
        ({"eqface": {"a:b": "a" * 64}}, "iqa_weights.eqface.a:b must be"),
    ],
)
def test_bad_iqa_weights_are_one_line_errors(tmp_path: Path, weights: Any, problem: str) -> None:
    put(tmp_path, make_result(method="good"))
    bad = put(tmp_path, json.dumps({**make_result(), "iqa_weights": weights}), name="bad/result.json")
    with pytest.raises(FairbenchError) as info:
        read_results(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{bad}: ") and problem in msg
    assert "\n" not in msg


def test_null_iqa_weights_reads_as_none_recorded(tmp_path: Path) -> None:
    put(tmp_path, {**eq_result("x", 0.7, None), "iqa_weights": None})
    put(tmp_path, eq_result("y", 0.8, {"eqface": W2}))
    (board,) = boards_for(tmp_path)
    assert board.iqa_weights == {"eqface": W2}


def test_markdown_and_csv_show_the_weights(tmp_path: Path) -> None:
    both = {"eqface": W1, "niqe": NIQE_W}
    put(tmp_path, eq_result("x", 0.7, both, niqe=5.0))
    put(tmp_path, eq_result("y", 0.8, {"eqface": W1}))
    put(tmp_path, make_result(method="plain", task="mnist-bicolor", task_hash=HASH_B))  # a board without IQA
    boards = boards_for(tmp_path)
    md = render_markdown(boards)
    info = next(line for line in md.splitlines() if line.startswith("Primary metric") and "eqface" in line)
    assert info.endswith(
        f"; eqface weights: eqface-backbone {W1['eqface-backbone'][:12]}, eqface-quality {W1['eqface-quality'][:12]}"
        f"; niqe weights: niqe-modelparameters {NIQE_W['niqe-modelparameters'][:12]}."
    )
    assert sum("weights:" in line for line in md.splitlines()) == 1  # not on the mnist-bicolor board

    frame = pd.read_csv(io.StringIO(render_csv(boards)))
    cols = list(frame.columns)
    assert cols.index("iqa_weights") == cols.index("feature_network") + 1
    by = frame.set_index(["task", "entry"])["iqa_weights"]
    eq = f"eqface=eqface-backbone:{W1['eqface-backbone'][:12]}+eqface-quality:{W1['eqface-quality'][:12]}"
    assert by[("digits-bicolor", "x")] == f"{eq};niqe=niqe-modelparameters:{NIQE_W['niqe-modelparameters'][:12]}"
    assert by[("digits-bicolor", "y")] == eq  # y has no niqe value
    assert pd.isna(by[("mnist-bicolor", "plain")])


def test_boards_without_iqa_weights_render_as_before(tmp_path: Path) -> None:
    """No `iqa_weights` column or info text unless some result recorded weights: old leaderboards rebuild
    byte for byte (the committed leaderboard/ is rebuilt from files without the field)."""
    put(tmp_path, eq_result("old", 0.5, None))
    put(tmp_path, eq_result("empty", 0.6, {}))
    boards = boards_for(tmp_path)
    assert "iqa_weights" not in render_csv(boards).splitlines()[0]
    assert "weights" not in render_markdown(boards)


def _with_bounds(seed: int, white: float, half: float) -> dict:
    props = [1 - white, white]
    result = make_result(seed=seed, group_proportions={"observed": props, "corrected": props})
    result["group_shares"] = {g: {"count": 0, "observed": {"value": v, "ci95": [v - half, v + half]}}
                              for g, v in zip(["black", "white"], props)}
    return result


def test_seeds_whose_share_intervals_do_not_overlap_are_marked(tmp_path: Path) -> None:
    """0 and 100% white in two seeds is a disagreement no interval explains; 48 and 52% within +-3 is not."""
    apart, close = tmp_path / "apart", tmp_path / "close"
    for seed, white in ((0, 0.0), (1, 1.0)):
        put(apart, _with_bounds(seed, white, 0.01))
    for seed, white in ((0, 0.48), (1, 0.52)):
        put(close, _with_bounds(seed, white, 0.03))
    assert "white 0.0 / 100.0 (50.0) ≠ |" in render_markdown(boards_for(apart))
    marked = render_markdown(boards_for(close))
    assert "white 48.0 / 52.0 (50.0) |" in marked and "(50.0) ≠" not in marked


def test_judged_shares_are_a_column_in_markdown_and_csv(tmp_path: Path) -> None:
    observed = {0: [0.30, 0.70], 1: [0.42, 0.58]}
    for seed, props in observed.items():
        put(tmp_path, make_result(seed=seed, group_proportions={"observed": props, "corrected": props}))
    boards = boards_for(tmp_path)
    frame = pd.read_csv(io.StringIO(render_csv(boards)))
    assert frame.loc[0, "judged_share_black_mean"] == pytest.approx((0.30 + 0.42) / 2)
    assert frame.loc[0, "judged_share_white_mean"] == pytest.approx((0.70 + 0.58) / 2)
    # each run's share in seed order, then the mean: an average alone would hide a collapsed seed
    assert "| black 30.0 / 42.0 (36.0), white 70.0 / 58.0 (64.0) |" in render_markdown(boards)
    # runs that disagree on the groups have no mean share: shown as missing, never a partial mean
    put(tmp_path, make_result(seed=2, groups=["a", "b"]))
    assert "judged_share_black_mean" not in render_csv(boards_for(tmp_path))


# ------------------------------------------------------------------------------------------- headers and units


def test_headers_are_words_and_unknown_metrics_stay_raw(tmp_path: Path) -> None:
    from fairbench.leaderboard.columns import metric_label

    put(tmp_path, make_result(feature_network={"id": "domain-mnist", "sha256": "a" * 64}))
    (board,) = boards_for(tmp_path)
    assert [metric_label(board, name) for name in (
        "kl_uniform_corrected", "kl_uniform", "kl_uniform_corrected_debiased_cond_worst", "kl_uniform_normalized",
        "fd_l1_corrected_cond_mean", "fid", "fid_intra_worst", "kid", "eqface", "kl_uniform_mystery",
    )] == [
        "KL to uniform (corrected)", "KL to uniform (observed)", "KL to uniform (corrected, debiased, worst condition)",
        "KL to uniform / ln |S| (observed)", "L1 distance to uniform (corrected, mean over conditions)",
        "FID (domain-mnist)", "FID per group, worst (domain-mnist)", "KID, unscaled (domain-mnist)", "eqface",
        "kl_uniform_mystery",
    ]


def test_main_quality_metric_follows_the_primary(tmp_path: Path) -> None:
    """FID when the board has it (whatever its place in HEADLINE_METRICS), else KID; none without either."""
    fn = {"id": "domain-mnist", "sha256": "a" * 64}
    put(tmp_path / "fid", make_result(metrics={"kl_uniform_corrected": 0.1, "kid": 2.0, "fid": 30.0}, feature_network=fn))
    put(tmp_path / "kid", make_result(metrics={"kl_uniform_corrected": 0.1, "kid": 2.0}, feature_network=fn))
    put(tmp_path / "none", make_result(metrics={"kl_uniform_corrected": 0.1, "kl_uniform": 0.2}))
    heads = {}
    for case in ("fid", "kid", "none"):
        heads[case] = list(md_table(render_markdown(boards_for(tmp_path / case)))[0])[:5]
    assert heads["fid"] == ["rank", "entry", "KL to uniform (corrected) ↓", "FID (domain-mnist) ↓", "judged shares (%)"]
    assert heads["kid"] == ["rank", "entry", "KL to uniform (corrected) ↓", "KID, unscaled (domain-mnist) ↓",
                            "judged shares (%)"]
    assert heads["none"] == ["rank", "entry", "KL to uniform (corrected) ↓", "judged shares (%)", "runs"]


def test_kid_unit_is_stated_wherever_kid_appears(tmp_path: Path) -> None:
    """KID is stored as computed (frechet.kid applies no factor); papers print KID x 10^3. Markdown, HTML and
    both CSVs say which it is."""
    fn = {"id": "domain-mnist", "sha256": "a" * 64}
    results = tmp_path / "results"
    for seed in range(2):
        put(results, make_result(seed=seed, metrics={"kl_uniform_corrected": 0.1, "fid": 30.0 + seed, "kid": 26.5 + seed},
                                 feature_network=fn))
    write_leaderboard(results, tmp_path, per_seed=True, html=True)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "| KID, unscaled (domain-mnist) ↓ |" in md
    assert "KID, unscaled (domain-mnist) = `kid@domain-mnist`. KID, unscaled (domain-mnist) is the mean unbiased " \
           "squared MMD as computed (×1, not the ×10³ most papers print)." in md
    assert md.count("KID") == md.count("KID, unscaled") == 4  # table, key, unit sentence, per-run table
    page = (tmp_path / "leaderboard.html").read_text()
    assert '<th data-key="kid" title="kid@domain-mnist: the mean unbiased squared MMD as computed (×1, not the ' \
           '×10³ most papers print)">KID, unscaled (domain-mnist) ↓</th>' in page
    for name in ("leaderboard.csv", "leaderboard_runs.csv"):
        frame = pd.read_csv(tmp_path / name)
        assert set(frame["kid@domain-mnist_unit"]) == {"the mean unbiased squared MMD as computed (×1, not the ×10³ "
                                                       "most papers print)"}
    # the value itself is not rescaled anywhere
    assert pd.read_csv(tmp_path / "leaderboard.csv").loc[0, "kid@domain-mnist_mean"] == pytest.approx(27.0)
