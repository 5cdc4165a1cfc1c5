"""Every network call made while scoring has a size fixed by the number of images alone (fairbench.chunking):
the property that makes a score independent of how anyone batches, checked on the calls themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fairbench import scoring
from fairbench.chunking import SCORE_CHUNK, chunk_slices
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.submission import checkpoint as ckpt_io


@pytest.mark.parametrize("n", [0, 1, SCORE_CHUNK - 1, SCORE_CHUNK, SCORE_CHUNK + 1, 3 * SCORE_CHUNK + 7])
def test_chunk_slices_tile_the_range_in_full_chunks_then_the_rest(n: int) -> None:
    parts = chunk_slices(n)
    covered = [i for part in parts for i in range(part.start, part.stop)]
    assert covered == list(range(n))
    assert all(part.stop - part.start == SCORE_CHUNK for part in parts[:-1])
    assert not parts or 0 < parts[-1].stop - parts[-1].start <= SCORE_CHUNK


def test_chunk_slices_refuse_an_empty_chunk() -> None:
    with pytest.raises(ValueError, match="positive"):
        chunk_slices(5, 0)


def test_generator_and_judge_see_only_fixed_size_calls(digits_checkpoint: Path, monkeypatch) -> None:
    """600 samples: calls of 250, 250 and 100 to the generator and to the judge, whatever the threads."""
    seen: dict[str, list[int]] = {"generator": [], "judge": []}
    hooks = []

    def record(name: str, module: torch.nn.Module) -> torch.nn.Module:
        hooks.append(module.register_forward_hook(lambda _m, inputs, _out: seen[name].append(len(inputs[0]))))
        return module

    build, load = ckpt_io.build_generator, scoring.load_judge
    monkeypatch.setattr(ckpt_io, "build_generator", lambda *a, **k: record("generator", build(*a, **k)))
    monkeypatch.setattr(scoring, "load_judge", lambda *a, **k: _judge_recorded(load(*a, **k), record))
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # where kernels split work by shape: this is where batch size once leaked in
    try:
        result = score_checkpoint(digits_checkpoint, ScoreOptions(n_samples=600, device="cpu"))
    finally:
        torch.set_num_threads(previous)
        for hook in hooks:  # a cached judge outlives this test
            hook.remove()
    assert result.n_samples == 600
    assert seen["generator"] == [SCORE_CHUNK, SCORE_CHUNK, 100]
    assert seen["judge"] == [SCORE_CHUNK, SCORE_CHUNK, 100]


def _judge_recorded(judge, record):
    record("judge", judge.net)
    return judge
