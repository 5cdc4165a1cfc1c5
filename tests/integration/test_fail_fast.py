"""Without a network, a missing dataset or asset fails in seconds with where to place the file by hand, and a
data root the user named but that is not there is never created.

FAIRBENCH_OFFLINE is unset here (the conftest sets it): these are the paths that try to download. Hosts are
127.0.0.1 on a port that is bound but not listening (refused at once), or a `create_connection` that never
returns (a firewall dropping packets, a resolver that does not answer), which a socket timeout alone would
not bound."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torchvision
from typer.testing import CliRunner

from fairbench import netcheck
from fairbench import assets
from fairbench.assets import download
from fairbench.cli import app
from fairbench.data import MNIST_FILES, MNIST_SHA256
from fairbench.errors import FairbenchError


@pytest.fixture()
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAIRBENCH_OFFLINE", raising=False)
    monkeypatch.setattr(netcheck, "CONNECT_TIMEOUT_S", 1.0)  # the blackhole tests wait this long
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture()
def closed_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 that never listens: a connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture()
def blackhole(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple]]:
    """Every connection attempt hangs (until the test ends): what a dropped SYN or a dead resolver looks like."""
    release = threading.Event()
    calls: list[tuple] = []

    def hang(address, *args, **kwargs):
        calls.append(address)
        release.wait(60)
        raise TimeoutError("released by the test")

    monkeypatch.setattr(socket, "create_connection", hang)
    yield calls
    release.set()


def test_probe_refused_port_answers_at_once(closed_port: int, online: None) -> None:
    started = time.monotonic()
    found = netcheck.probe([f"http://127.0.0.1:{closed_port}/x.bin"], timeout=5.0)
    assert time.monotonic() - started < 2.0
    (why,) = found.values()
    assert why is not None and f"127.0.0.1:{closed_port}" in why and "refused" in why.lower()


def test_probe_of_hanging_hosts_takes_one_timeout_for_all(blackhole: list[tuple], online: None) -> None:
    urls = [f"https://mirror{i}.example/file" for i in range(3)]
    started = time.monotonic()
    answered, failed = netcheck.reachable(urls, timeout=0.5)
    elapsed = time.monotonic() - started
    assert answered == [] and len(failed) == 3
    assert elapsed < 1.5, "the hosts are probed at once, not one timeout after another"
    assert all("no answer within 0.5 s" in line for line in failed)
    assert sorted(blackhole) == [(f"mirror{i}.example", 443) for i in range(3)]  # one attempt per mirror


def test_probe_names_a_reachable_host(online: None) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/file"
        assert netcheck.reachable([url], timeout=2.0) == ([url], [])
    finally:
        server.close()


def _mnist_run(tmp_path: Path) -> tuple[object, float]:
    empty = tmp_path / "data"
    empty.mkdir()
    started = time.monotonic()
    result = CliRunner().invoke(app, ["run", "--method", "vanilla", "--task", "mnist-bicolor", "--steps", "2",
                                      "--device", "cpu", "--data-root", str(empty), "--out", str(tmp_path / "runs")])
    return result, time.monotonic() - started


@pytest.mark.parametrize("kind", ["refused", "hanging"])
def test_mnist_download_fails_fast_and_says_where_to_put_the_files(
    kind: str, tmp_path: Path, online: None, closed_port: int, monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    mirrors = [f"http://127.0.0.1:{closed_port}/a/", f"http://127.0.0.1:{closed_port}/b/"]
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", mirrors)
    if kind == "hanging":
        request.getfixturevalue("blackhole")
    result, elapsed = _mnist_run(tmp_path)
    assert result.exit_code == 2, result.output
    assert elapsed < netcheck.CONNECT_TIMEOUT_S + 4, f"took {elapsed:.1f} s"
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: MNIST files missing (download failed:") and "Traceback" not in result.output
    assert str(tmp_path / "data" / "MNIST" / "raw") in line
    for name in MNIST_FILES["train"]:
        assert name in line and MNIST_SHA256[name] in line
    assert not (tmp_path / "runs").exists()


def test_cifar10_and_svhn_downloads_fail_fast(
    tmp_path: Path, online: None, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fairbench import data
    from fairbench.task_registry import get_task

    url = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"{url}/cifar-10-python.tar.gz")
    train = torchvision.datasets.SVHN.split_list["train"]
    monkeypatch.setitem(torchvision.datasets.SVHN.split_list, "train", [f"{url}/train_32x32.mat", *train[1:]])
    for task, where in (("cifar10-lt", "cifar-10-batches-py"), ("svhn-shaded", "svhn/train_32x32.mat")):
        started = time.monotonic()
        with pytest.raises(FairbenchError, match=f"download failed: {url}.*refused") as caught:
            data.load_split(get_task(task), "train", tmp_path)
        assert time.monotonic() - started < 3.0
        assert where in str(caught.value)


def test_asset_fetch_fails_fast_with_the_placement_hint(
    tmp_path: Path, online: None, blackhole: list[tuple], monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "assets": [{
        "id": "blob", "path": "test/blob.bin", "sha256": "0" * 64, "url": "https://one.example/blob.bin",
        "mirrors": ["https://two.example/blob.bin"], "licence": "CC0-1.0", "description": "a test file",
        "used_by": ["test-metric"],
    }]}))
    monkeypatch.setenv(assets.MANIFEST_ENV, str(manifest))
    started = time.monotonic()
    with pytest.raises(FairbenchError) as caught:
        download.fetch("blob")
    assert time.monotonic() - started < netcheck.CONNECT_TIMEOUT_S + 1.5
    message = str(caught.value)
    assert "one.example" in message and "two.example" in message and "no answer within" in message
    assert f"at {assets.assets_root() / 'test' / 'blob.bin'}" in message  # where to put it by hand
    assert len(blackhole) == 2  # each mirror tried once


def test_named_data_root_that_is_not_there_is_one_line_and_never_created(
    tmp_path: Path, online: None, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{closed_port}/"])
    missing = tmp_path / "typo"
    run = ["run", "--method", "vanilla", "--task", "mnist-bicolor", "--steps", "2", "--device", "cpu",
           "--out", str(tmp_path / "runs")]
    given = CliRunner().invoke(app, [*run, "--data-root", str(missing)])
    assert given.exit_code == 2
    assert given.output.strip() == (
        f"error: data root {missing} (--data-root) does not exist; fairbench does not create it: create it, or "
        "point --data-root at the folder that holds your datasets"
    )
    monkeypatch.setenv("FAIRBENCH_DATA", str(missing))
    from_env = CliRunner().invoke(app, run)
    assert from_env.exit_code == 2
    (line,) = from_env.output.strip().splitlines()
    assert line.startswith(f"error: data root {missing} (FAIRBENCH_DATA) does not exist")
    assert not missing.exists() and not (tmp_path / "runs").exists()

