"""Feature networks (shipped domain networks, the Inception entry) and the reference-statistics cache."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fairbench import features
from fairbench.scoring import refstats
from fairbench.data import load_split
from fairbench.errors import FairbenchError
from fairbench.features import FEATURE_NETWORKS, load_feature_network
from fairbench.networks import domain
from fairbench.networks.domain import train_domain_network
from fairbench.metrics.frechet import feature_stats, frechet_distance
from fairbench.task_registry import get_task

WEIGHTS = Path(features.__file__).resolve().parent / "weights"
SHIPPED = {"domain-digits": "digits-bicolor", "domain-mnist": "mnist-bicolor", "domain-cifar10": "cifar10-lt"}
MIN_ACCURACY = {"domain-digits": 0.90, "domain-mnist": 0.97, "domain-cifar10": 0.65}  # CIFAR-10: a 2-block CNN


def card_of(network_id: str) -> dict:
    return json.loads((WEIGHTS / f"{network_id}.json").read_text())


@pytest.fixture(scope="module")
def digits_net():
    return load_feature_network("domain-digits", card_of("domain-digits")["sha256"])


@pytest.fixture(scope="module")
def digits_test():
    return load_split(get_task("digits-bicolor"), "test")


# --------------------------------------------------------------------------------------- shipped networks


@pytest.mark.parametrize("network_id", sorted(SHIPPED))
def test_shipped_weights_match_card_and_load(network_id: str) -> None:
    card = card_of(network_id)
    digest = hashlib.sha256((WEIGHTS / f"{network_id}.safetensors").read_bytes()).hexdigest()
    assert card["id"] == network_id
    assert card["sha256"] == digest
    assert card["task"] == SHIPPED[network_id]
    assert card["dim"] == 128
    assert (WEIGHTS / f"{network_id}.safetensors").stat().st_size < 1_000_000
    net = load_feature_network(network_id, digest)
    assert (net.id, net.sha256, net.dim, net.resize_rule) == (network_id, digest, 128, card["resize_rule"])
    assert card["accuracy"] >= MIN_ACCURACY[network_id]


def test_registry_names() -> None:
    assert {"domain-digits", "domain-mnist", "inception"} <= set(FEATURE_NETWORKS.names())
    with pytest.raises(FairbenchError, match="unknown feature network 'domain-digit'.*domain-digits"):
        load_feature_network("domain-digit", "0" * 64)


def test_wrong_sha256_refused() -> None:
    with pytest.raises(FairbenchError, match="does not match the pinned feature network"):
        load_feature_network("domain-digits", "0" * 64)


def test_missing_network_names_file_and_place(monkeypatch, tmp_path, _isolated_home) -> None:
    monkeypatch.setattr(domain, "PACKAGE_DIR", tmp_path / "empty")
    with pytest.raises(FairbenchError, match=r"place domain-digits.safetensors \(sha256 a{64}\).*features"):
        load_feature_network("domain-digits", "a" * 64)


def test_home_copy_is_found_and_checked(monkeypatch, tmp_path, _isolated_home) -> None:
    home = _isolated_home / "features"
    home.mkdir()
    for ext in ("safetensors", "json"):
        shutil.copy(WEIGHTS / f"domain-digits.{ext}", home / f"domain-digits.{ext}")
    monkeypatch.setattr(domain, "PACKAGE_DIR", tmp_path / "empty")
    sha = card_of("domain-digits")["sha256"]
    assert load_feature_network("domain-digits", sha).sha256 == sha
    (home / "domain-digits.json").write_text("{not json")
    with pytest.raises(FairbenchError, match="card missing or invalid"):
        load_feature_network("domain-digits", sha)


def test_extract_shape_dtype_and_batch_size_independence(digits_net, digits_test) -> None:
    images = digits_test.images[:100]
    whole = digits_net.extract(images, 100, "cpu")
    assert whole.shape == (100, 128) and whole.dtype == np.float64
    assert np.isfinite(whole).all()
    for batch in (1, 7, 64):
        np.testing.assert_allclose(digits_net.extract(images, batch, "cpu"), whole, rtol=0, atol=1e-9)
    # an image's features do not depend on its neighbours
    np.testing.assert_allclose(digits_net.extract(images[5:6], 1, "cpu"), whole[5:6], rtol=0, atol=1e-9)
    assert digits_net.extract(images[:0], 8, "cpu").shape == (0, 128)


def test_extract_refuses_wrong_input(digits_net) -> None:
    with pytest.raises(FairbenchError, match="takes 1x16x16 images"):
        digits_net.extract(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), 8, "cpu")
    with pytest.raises(FairbenchError, match="uint8"):
        digits_net.extract(torch.zeros(2, 1, 16, 16), 8, "cpu")
    with pytest.raises(FairbenchError, match="batch size"):
        digits_net.extract(torch.zeros(2, 1, 16, 16, dtype=torch.uint8), 0, "cpu")


def test_digits_network_classifies_and_separates(digits_net, digits_test) -> None:
    predicted = digits_net.classify(digits_test.images)
    accuracy = float((predicted == digits_test.labels.numpy()).mean())
    assert accuracy >= digits_net.card.accuracy - 0.02
    # features: real test digits are far closer to real training digits than to noise
    train = load_split(get_task("digits-bicolor"), "train")
    ref = feature_stats(digits_net.extract(train.images, 512, "cpu"))
    real = frechet_distance(feature_stats(digits_net.extract(digits_test.images, 512, "cpu")), ref)
    noise = torch.randint(0, 256, (347, 1, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert frechet_distance(feature_stats(digits_net.extract(noise, 512, "cpu")), ref) > 5 * real


def test_mnist_network_accuracy_on_real_subset(mnist_root) -> None:
    net = load_feature_network("domain-mnist", card_of("domain-mnist")["sha256"])
    test = load_split(get_task("mnist-bicolor"), "test", mnist_root)
    predicted = net.classify(test.images[:1000])
    assert float((predicted == test.labels[:1000].numpy()).mean()) >= net.card.accuracy - 0.02
    imbalanced = load_split(get_task("mnist-bicolor-imbalanced"), "test", mnist_root)
    assert net.extract(imbalanced.images[:4], 4, "cpu").shape == (4, 128)


def test_training_is_deterministic(tmp_path) -> None:
    task = get_task("digits-bicolor")
    a = train_domain_network(task, tmp_path / "a", seed=3, epochs=1)
    b = train_domain_network(task, tmp_path / "b", seed=3, epochs=1)
    assert a.sha256 == b.sha256
    assert a.id == "domain-digits" and a.epochs == 1 and a.seed == 3
    assert (tmp_path / "a" / "domain-digits.json").is_file()
    with pytest.raises(FairbenchError, match="no domain feature network"):
        train_domain_network(get_task("mnist-bicolor-imbalanced"), tmp_path / "c", epochs=1)


# --------------------------------------------------------------------------------------- Inception


def _fake_assets(monkeypatch, require) -> None:
    module = types.ModuleType("fairbench.assets")
    module.require = require  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fairbench.assets", module)


def test_inception_missing_asset_raises_require_error(monkeypatch) -> None:
    message = "inception-2015-12-05 missing: place inception-2015-12-05.pt (sha256 f58c…) at /x/y"

    def require(asset_id):
        assert asset_id == "inception-2015-12-05"
        raise FairbenchError(message)

    _fake_assets(monkeypatch, require)
    loaded = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loaded.append(a))
    with pytest.raises(FairbenchError) as info:
        load_feature_network("inception", "f" * 64)
    assert str(info.value) == message
    assert loaded == []


def test_inception_offline_without_asset_names_file(_isolated_home) -> None:
    """With the real asset manifest: offline and absent, one clear error naming the file and where it goes."""
    pytest.importorskip("fairbench.assets")
    where = re.escape(str(_isolated_home))
    with pytest.raises(FairbenchError, match=r"inception-2015-12-05\.pt.*sha256.*" + where):
        load_feature_network("inception", "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4")


def test_inception_wrong_file_refused_before_loading(monkeypatch, tmp_path) -> None:
    fake = tmp_path / "inception-2015-12-05.pt"
    fake.write_bytes(b"not the network")
    _fake_assets(monkeypatch, lambda asset_id: fake)
    loaded = []
    with monkeypatch.context() as m:
        m.setattr(torch.jit, "load", lambda *a, **k: loaded.append(a))
        with pytest.raises(FairbenchError, match="does not match the pinned feature network"):
            load_feature_network("inception", "f" * 64)
    assert loaded == []
    # the right hash but not TorchScript: a clean error, not a traceback
    with pytest.raises(FairbenchError, match="cannot load the Inception TorchScript"):
        load_feature_network("inception", hashlib.sha256(b"not the network").hexdigest())


def test_inception_inputs_shape_and_grey_replication() -> None:
    rng = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (2, 1, 8, 8), generator=rng, dtype=torch.uint8)
    out = features.inception_inputs(grey)
    assert out.shape == (2, 3, 299, 299) and out.dtype == torch.float32
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])
    assert out.min() >= 0 and out.max() <= 255
    const = torch.full((1, 3, 5, 7), 77, dtype=torch.uint8)
    assert torch.allclose(features.inception_inputs(const), torch.tensor(77.0), atol=1e-3)
    with pytest.raises(FairbenchError, match="channels"):
        features.inception_inputs(torch.zeros(1, 2, 4, 4, dtype=torch.uint8))


def test_inception_resize_matches_clean_fid() -> None:
    resize = pytest.importorskip("cleanfid.resize")
    clean = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    rng = np.random.default_rng(0)
    for shape in [(8, 8, 3), (16, 12, 3), (28, 28, 3)]:
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        expected = clean(image).transpose(2, 0, 1)
        got = features.inception_inputs(torch.from_numpy(image.transpose(2, 0, 1).copy())[None])[0].numpy()
        np.testing.assert_array_equal(got, expected)


# --------------------------------------------------------------------------------------- refstats


def key(**over) -> dict:
    base = {
        "data_hash": "d" * 64,
        "split": "reference",
        "variant": "as-is",
        "feature_network": ["domain-digits", "a" * 64],
        "resize_rule": "none",
        "seed": 0,
    }
    return {**base, **over}


def test_refstats_miss_hit_and_distinct_keys(_isolated_home) -> None:
    calls = []
    stats = feature_stats(np.random.default_rng(0).normal(size=(20, 3)))

    def compute():
        calls.append(1)
        return stats

    first = refstats.get_or_compute(key(), compute)
    second = refstats.get_or_compute(key(), compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.cov, second.cov)
    path = refstats.cache_path(key())
    assert path.parent == _isolated_home / "refstats" and path.is_file()
    assert path.stem == hashlib.sha256(
        json.dumps(key(), sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    # every field is part of the key; field order is not
    for changed in (key(variant="balanced"), key(variant="group:white"), key(seed=1), key(resize_rule="x")):
        assert refstats.cache_path(changed) != path
    assert refstats.cache_path(dict(reversed(list(key().items())))) == path
    refstats.get_or_compute(key(variant="group:white"), compute)
    assert len(calls) == 2


def test_refstats_corrupt_file_is_recomputed(_isolated_home, caplog) -> None:
    stats = feature_stats(np.random.default_rng(1).normal(size=(20, 3)))
    refstats.get_or_compute(key(), lambda: stats)
    path = refstats.cache_path(key())
    path.write_bytes(b"garbage")
    again = refstats.get_or_compute(key(), lambda: stats)
    np.testing.assert_array_equal(again.mean, stats.mean)
    assert "recomputing" in caplog.text
    assert refstats.get_or_compute(key(), lambda: pytest.fail("should hit the repaired cache")).n == 20
    # a valid file under the wrong name (another key's statistics) is not trusted either
    other = refstats.cache_path(key(seed=9))
    shutil.copy(path, other)
    calls = []
    refstats.get_or_compute(key(seed=9), lambda: calls.append(1) or stats)
    assert calls == [1]


def test_refstats_key_validation() -> None:
    with pytest.raises(ValueError, match="misses seed"):
        refstats.cache_key({k: v for k, v in key().items() if k != "seed"})
    with pytest.raises(ValueError, match="variant"):
        refstats.cache_key(key(variant="group:"))
    with pytest.raises(ValueError, match="JSON"):
        refstats.cache_key(key(seed=float("nan")))


def test_reference_features_cache_hit_miss_and_corruption(_isolated_home, caplog) -> None:
    features = np.random.default_rng(2).normal(size=(30, 4))
    calls = []

    def compute():
        calls.append(1)
        return features

    first = refstats.get_or_compute_features(key(), compute)
    second = refstats.get_or_compute_features(key(), compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, features)
    np.testing.assert_array_equal(second, features)
    path = refstats.cache_path(key()).with_suffix(".features.npz")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    path.write_bytes(b"garbage")  # corrupt: recomputed and repaired
    np.testing.assert_array_equal(refstats.get_or_compute_features(key(), compute), features)
    assert len(calls) == 2 and "recomputing" in caplog.text
    shutil.copy(path, refstats.cache_path(key(seed=5)).with_suffix(".features.npz"))  # another key's file
    refstats.get_or_compute_features(key(seed=5), compute)
    assert len(calls) == 3
