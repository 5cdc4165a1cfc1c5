"""Which feature network scores the FID family: the task's, its GPU one on CUDA, or `--feature-network`."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from fairbench import assets
from fairbench.errors import FairbenchError
from fairbench.scoring.quality import select_feature_network
from fairbench.task_registry import FeatureRef, get_task, parse_task
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
CLIP_SHA = "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762"  # OpenAI's RN50.pt, as in the manifest


def _with_gpu_network(**gpu: str):
    data = yaml.safe_load((REPO / "tasks" / "digits-bicolor.yaml").read_text())
    data["quality"]["gpu_feature_network"] = gpu
    return parse_task(data, "test task")


def test_the_tasks_network_unless_asked_otherwise() -> None:
    task = get_task("digits-bicolor")
    for requested in (None, "task"):
        for device in ("cpu", "cuda"):  # no GPU network declared: the same on both
            assert select_feature_network(task, requested, device) == task.quality.feature_network


def test_a_declared_gpu_network_is_the_default_on_cuda_only() -> None:
    task = _with_gpu_network(id="clip", sha256=CLIP_SHA)
    assert select_feature_network(task, None, "cuda") == FeatureRef("clip", CLIP_SHA)
    assert select_feature_network(task, None, "cuda:0") == FeatureRef("clip", CLIP_SHA)
    assert select_feature_network(task, None, "cpu") == task.quality.feature_network
    assert select_feature_network(task, "domain-digits", "cuda") == task.quality.feature_network  # an override wins


def test_asset_networks_by_id_are_pinned_by_the_manifest() -> None:
    task = get_task("digits-bicolor")
    assert select_feature_network(task, "clip", "cpu") == FeatureRef("clip", CLIP_SHA)
    assert assets.get_asset("clip-rn50-openai").sha256 == CLIP_SHA
    inception = select_feature_network(task, "inception", "cpu")
    assert inception == FeatureRef("inception", assets.get_asset("inception-2015-12-05").sha256)


def test_unknown_or_unpinned_networks_are_one_clear_error() -> None:
    task = get_task("digits-bicolor")
    with pytest.raises(FairbenchError, match="unknown feature network 'clp'. Did you mean 'clip'"):
        select_feature_network(task, "clp", "cpu")
    with pytest.raises(FairbenchError, match="'domain-mnist' is pinned only by the task that names it"):
        select_feature_network(task, "domain-mnist", "cpu")


def test_the_optional_gpu_network_leaves_existing_task_hashes_alone() -> None:
    # mnist-bicolor's hash as recorded by the committed reference results in leaderboard/results/
    assert get_task("mnist-bicolor").task_hash.startswith("38948f51b2f1")
    plain = get_task("digits-bicolor")
    declared = _with_gpu_network(id="clip", sha256=CLIP_SHA)
    assert declared.task_hash != plain.task_hash  # it changes what a GPU scores with, so it is part of the task
    assert dataclasses.replace(declared, quality=plain.quality).task_hash == plain.task_hash


def test_a_malformed_gpu_network_is_refused() -> None:
    with pytest.raises(FairbenchError, match="gpu_feature_network"):
        _with_gpu_network(id="clip")


def test_with_feature_network_pins_the_choice_on_every_device() -> None:
    from fairbench.scoring.quality import with_feature_network

    declared = _with_gpu_network(id="clip", sha256=CLIP_SHA)
    assert with_feature_network(declared, None) is declared and with_feature_network(declared, "task") is declared
    forced = with_feature_network(declared, "domain-digits")
    for device in ("cpu", "cuda"):  # the override holds on a GPU too, where the task would pick clip
        assert select_feature_network(forced, None, device) == declared.quality.feature_network
    assert forced.data_hash == declared.data_hash  # what methods train on is untouched
    with pytest.raises(FairbenchError, match="unknown feature network"):
        with_feature_network(declared, "nope")
