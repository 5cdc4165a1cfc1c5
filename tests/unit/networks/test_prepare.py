"""The explicit first-use step (`fairbench.networks.prepare`): networks a task declares trained on first use are
trained there, once per data, with a note and progress; everything after it only loads them."""

from __future__ import annotations

import dataclasses

import pytest

from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.networks import kinds
from fairbench.networks.prepare import Prepared, ensure, prepare
from fairbench.task_registry import get_task


def _first_use_judge_task():
    """digits-bicolor with its judge trained on first use, for one epoch (seconds)."""
    task = get_task("digits-bicolor")
    judge = dataclasses.replace(task.judge, sha256=None, trained_on_first_use=True, epochs=1)
    return dataclasses.replace(task, judge=judge)


def test_pinned_networks_need_nothing() -> None:
    notes, stages = [], []
    got = prepare(get_task("digits-bicolor"), None, lambda *a: stages.append(a), notes.append)
    assert got == Prepared(None) and notes == [] and stages == []


def test_first_use_judge_is_trained_once_then_only_loaded(_isolated_home) -> None:
    task = _first_use_judge_task()
    with pytest.raises(FairbenchError, match="trained on first use and none matches this data"):
        load_judge(task)  # loading never trains
    notes, stages = [], []
    assert prepare(task, None, lambda *a: stages.append(a), notes.append) == Prepared(None)
    folder = _isolated_home / "judges"
    assert notes == [
        f"judge digits-bicolor is trained on first use: training it on your data now (seeded; cached in {folder}; "
        "results record its sha256)"
    ]
    assert stages and {s for s, _, _ in stages} == {"training judge"} and stages[-1][1] == stages[-1][2]
    judge = load_judge(task)
    assert judge.card.first_use_key and (folder / "digits-bicolor.safetensors").is_file()
    prepare(task, None, lambda *a: stages.append(a), notes.append)  # cached for this data: nothing again
    assert len(notes) == 1


def test_a_feature_network_that_cannot_be_prepared_only_loses_the_fid_family() -> None:
    task = get_task("digits-bicolor")
    ref = dataclasses.replace(task.quality.feature_network, sha256=None, trained_on_first_use=True)
    broken = dataclasses.replace(task, quality=dataclasses.replace(task.quality, feature_network=ref))
    got = prepare(task, quality_task=broken)
    assert got.feature_network_problem == (
        "feature network domain-digits not available: task digits-bicolor: feature network 'domain-digits' has "
        "no first-use recipe"
    )


def test_a_judge_that_cannot_be_prepared_stops_scoring(monkeypatch) -> None:
    def no_data(task):
        raise FairbenchError("no data here")

    judge_kind = dataclasses.replace(kinds.KINDS.get("judge"), first_use=no_data)
    monkeypatch.setitem(kinds.KINDS._items, "judge", judge_kind)
    with pytest.raises(FairbenchError, match="even fairness cannot be scored without it: no data here"):
        prepare(get_task("digits-bicolor"))


def test_ensure_trains_through_the_kind_it_is_given(_isolated_home) -> None:
    """One implementation for every kind: the note names the kind, the stage is `training <kind>`."""
    task = _first_use_judge_task()
    calls = []

    def train(t, folder, root, progress):
        calls.append((t.id, folder))
        progress(1, 1)

    needed = kinds.FirstUse("stand-in", {"split": "judge", "id": "stand-in"}, train)
    kind = dataclasses.replace(kinds.KINDS.get("feature network"), first_use=lambda t: needed)
    notes, stages = [], []
    ensure(kind, task, None, lambda *a: stages.append(a), notes.append)
    assert calls == [("digits-bicolor", _isolated_home / "features")]
    assert notes[0].startswith("feature network stand-in is trained on first use")
    assert stages == [("training feature network", 1, 1)]
