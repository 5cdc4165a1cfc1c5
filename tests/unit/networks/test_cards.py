"""Network cards (`fairbench.networks.cards`): read strictly, written in their fields' order, machine lines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from fairbench.errors import FairbenchError
from fairbench.networks import domain, judge
from fairbench.networks.cards import FeatureCard, JudgeCard


@pytest.mark.parametrize(("cls", "folder", "id"), [(JudgeCard, judge.PACKAGE_DIR, "digits-bicolor"),
                                                   (FeatureCard, domain.PACKAGE_DIR, "domain-digits")])
def test_a_shipped_card_reads_and_writes_back_the_same_keys(cls, folder: Path, id: str, tmp_path: Path) -> None:
    raw = json.loads((folder / f"{id}.json").read_text())
    card = cls.from_raw(raw, folder / f"{id}.safetensors")
    card.write(tmp_path / f"{id}.safetensors")
    written = json.loads((tmp_path / f"{id}.json").read_text())
    assert {k: v for k, v in written.items() if k in raw} == raw
    assert list(written) == [f.name for f in dataclasses.fields(cls)]  # the order card files were always written in


def test_an_invalid_card_names_its_file_and_kind(tmp_path: Path) -> None:
    with pytest.raises(FairbenchError, match=r"x\.json: feature network card invalid"):
        FeatureCard.from_raw({"id": "x"}, tmp_path / "x.safetensors")
    with pytest.raises(FairbenchError, match=r"x\.json: judge card invalid"):
        JudgeCard.from_raw({"id": "x", "surprise": 1}, tmp_path / "x.safetensors")


def test_machine_lines() -> None:
    raw = json.loads((judge.PACKAGE_DIR / "digits-bicolor.json").read_text())
    old = JudgeCard(**{**raw, "torch_version": None})
    assert old.machine_lines() == ["trained on: not recorded (card written before fairbench recorded it)"]
    one = JudgeCard(**{**raw, "torch_version": "2.0", "threads": 1, "cpu": "C" * 100})
    assert one.machine_lines() == ["trained with torch 2.0, 1 thread", ("trained on CPU: " + "C" * 100)[:80]]
