"""The asset manager: manifest, verification, atomic downloads from a loopback server, offline, and the CLI."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from typer.testing import CliRunner

from fairbench import assets as store
from fairbench import atomic
from fairbench.cli.assets import assets_app
from fairbench.errors import FairbenchError
from fairbench.task_registry import list_tasks

PAYLOAD = bytes(range(256)) * 200  # 51,200 bytes: several chunks at the test chunk size
OTHER = bytes(reversed(PAYLOAD))
SHA = hashlib.sha256(PAYLOAD).hexdigest()
OTHER_SHA = hashlib.sha256(OTHER).hexdigest()


# --------------------------------------------------------------------------------------------- fixtures


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good: the payload; /wrong: other bytes of the same length; /die: half the payload, then the connection
    drops; /missing: 404. Counts requests per path."""

    hits: dict[str, int] = {}
    timeout = 5

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("/")[-1]
        self.hits[path] = self.hits.get(path, 0) + 1
        if path == "missing":
            self.send_error(404)
            return
        body = OTHER if path == "wrong" else PAYLOAD
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        if path == "die":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    """A loopback HTTP server on a random port, stopped at the end of the test."""
    _Handler.hits = {}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store.download, "CHUNK", 4096)
    monkeypatch.setattr(store.download, "TIMEOUT_S", 5.0)


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "0")


def _entry(id_: str = "blob", **fields: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "id": id_, "path": f"test/{id_}.bin", "url": "https://example.invalid/blob.bin", "sha256": SHA,
        "licence": "CC0-1.0", "description": "a test file", "used_by": ["test-metric"],
    }
    entry.update(fields)
    return entry


def _use_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *entries: dict[str, object]) -> Path:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": list(entries)}))
    monkeypatch.setenv(store.MANIFEST_ENV, str(path))
    return path


def _folder_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir()) if path.parent.exists() else []


# --------------------------------------------------------------------------------------------- manifest


def test_shipped_manifest_parses_and_every_entry_is_well_formed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    manifest = store.load_manifest()
    assert {"inception-2015-12-05", "niqe-modelparameters", "brisque-svm-weights", "clip-rn50-openai"} <= set(manifest)
    assert {"eqface-backbone", "eqface-quality"} <= set(manifest)
    for asset in manifest.values():
        assert asset.licence.strip() and asset.description.strip() and asset.used_by and asset.source.strip()
        assert not Path(asset.path).is_absolute() and ".." not in Path(asset.path).parts
        if asset.user_supplied:
            assert asset.url is None and asset.sha256 is None
            continue
        assert all(u.startswith("https://") for u in asset.urls)
        if asset.verify == "sha256":
            assert re.fullmatch(r"[0-9a-f]{64}", asset.sha256 or "")
        else:  # trust on first use: a published prefix when there is one, else the source says none was found
            assert asset.sha256 is None
            assert re.fullmatch(r"[0-9a-f]{16,63}", asset.sha256_prefix or "") or "no public sha256" in asset.source.lower()
    inception = manifest["inception-2015-12-05"]
    clean_fid_url = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
    assert inception.url == clean_fid_url  # cleanfid/downloads_helper.py, clean-fid 0.1.35
    assert inception.filename == "inception-2015-12-05.pt"  # clean-fid's InceptionV3W looks for this name
    clip = manifest["clip-rn50-openai"]
    assert all(u.split("/")[-2] == clip.sha256 for u in clip.urls)  # OpenAI's URLs carry the file's sha256


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "red"}, "unknown key"),
        ({"sha256": "abc"}, "64 lower-case hex"),
        ({"sha256": SHA.upper()}, "64 lower-case hex"),
        ({"url": "http://example.com/blob.bin"}, "https"),
        ({"url": None}, "needs a url"),
        ({"sha256": None}, "sha256 is required"),
        ({"licence": " "}, "licence"),
        ({"path": "/etc/passwd"}, "relative"),
        ({"path": "../escape.bin"}, "relative"),
        ({"verify": "trust-on-first-use"}, "sha256: null"),
        ({"user_supplied": True}, "no url"),
        ({"size_bytes": 0}, "positive"),
    ],
)
def test_manifest_refuses_malformed_entries(tmp_path, monkeypatch, change, message) -> None:
    path = _use_manifest(tmp_path, monkeypatch, _entry(**change))
    with pytest.raises(FairbenchError, match=message):
        store.load_manifest(path)


def test_manifest_refuses_duplicate_ids(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(), _entry())
    with pytest.raises(FairbenchError, match="duplicate asset id 'blob'"):
        store.load_manifest()


def test_unknown_asset_id_suggests_the_close_one(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry())
    with pytest.raises(FairbenchError, match="Did you mean 'blob'"):
        store.require("blobb")


# --------------------------------------------------------------------------------------------- local files


def test_missing_asset_offline_is_one_line_naming_file_sha256_path_and_url(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry())
    with pytest.raises(FairbenchError) as info:
        store.require("blob")
    message = str(info.value)
    assert "\n" not in message
    target = store.asset_path("blob")
    assert f"place blob.bin (sha256 {SHA}) at {target}, downloadable from https://example.invalid/blob.bin" in message
    assert "FAIRBENCH_OFFLINE=1" in message
    assert not target.exists()


def test_the_shipped_manifest_gives_the_same_one_line_message(monkeypatch) -> None:
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    with pytest.raises(FairbenchError) as info:
        store.require("inception-2015-12-05")
    message = str(info.value)
    assert "\n" not in message and "inception-2015-12-05.pt" in message
    assert "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4" in message
    assert str(store.asset_path("inception-2015-12-05")) in message


def test_a_file_with_the_right_content_is_accepted(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry())
    target = store.asset_path("blob")
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert store.require("blob") == target
    st = store.status("blob")
    assert st.state is store.AssetState.VERIFIED and st.actual_sha256 == SHA and st.usable


def test_verified_hashes_are_cached_by_size_and_mtime(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry())
    target = store.asset_path("blob")
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert store.status("blob").state is store.AssetState.VERIFIED
    calls = []
    real = atomic.sha256_file
    monkeypatch.setattr(atomic, "sha256_file", lambda p: calls.append(p) or real(p))
    assert store.status("blob").state is store.AssetState.VERIFIED and calls == []  # from the cache
    target.write_bytes(OTHER)  # same size, new mtime: hashed again, and refused
    assert store.status("blob").state is store.AssetState.CORRUPT and len(calls) == 1


def test_a_file_with_the_wrong_hash_is_refused_and_not_used(tmp_path, monkeypatch) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry())
    target = store.asset_path("blob")
    target.parent.mkdir(parents=True)
    target.write_bytes(OTHER)
    st = store.status("blob")
    assert st.state is store.AssetState.CORRUPT and not st.usable and st.actual_sha256 == OTHER_SHA
    with pytest.raises(FairbenchError) as info:
        store.require("blob")
    message = str(info.value)
    assert "\n" not in message and "refused" in message and OTHER_SHA in message and SHA in message
    assert str(target) in message


def test_online_require_replaces_a_corrupt_file_with_a_verified_download(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/good"))
    target = store.asset_path("blob")
    target.parent.mkdir(parents=True)
    target.write_bytes(OTHER)
    assert store.require("blob") == target
    assert target.read_bytes() == PAYLOAD


def test_user_supplied_asset_is_reported_not_downloaded(tmp_path, monkeypatch, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry("face", url=None, sha256=None, user_supplied=True))
    st = store.status("face")
    assert st.state is store.AssetState.USER_SUPPLIED_MISSING and st.label == "user-supplied, not present"
    with pytest.raises(FairbenchError, match="user-supplied: no public download") as info:
        store.require("face")
    assert str(store.asset_path("face")) in str(info.value)
    target = store.asset_path("face")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"anything")
    assert store.require("face") == target and store.status("face").state is store.AssetState.UNVERIFIED


# --------------------------------------------------------------------------------------------- downloads


def test_fetch_downloads_atomically_and_verifies(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/good", size_bytes=len(PAYLOAD)))
    seen: list[tuple[int, int | None]] = []
    path = store.fetch("blob", lambda done, total: seen.append((done, total)))
    assert path == store.asset_path("blob") and path.read_bytes() == PAYLOAD
    assert _folder_listing(path) == ["blob.bin"]  # no temp file left
    assert seen[0] == (0, len(PAYLOAD)) and seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 3
    assert store.status("blob").state is store.AssetState.VERIFIED
    store.fetch("blob")  # already verified: not downloaded again
    assert _Handler.hits == {"good": 1}


def test_wrong_bytes_from_the_server_are_refused_and_nothing_is_left(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/wrong"))
    with pytest.raises(FairbenchError, match="sha256 mismatch") as info:
        store.fetch("blob")
    assert "\n" not in str(info.value) and OTHER_SHA in str(info.value)
    target = store.asset_path("blob")
    assert not target.exists() and _folder_listing(target) == []


def test_a_server_that_dies_mid_transfer_leaves_no_partial_file(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/die"))
    with pytest.raises(FairbenchError, match="download failed"):
        store.fetch("blob")
    target = store.asset_path("blob")
    assert not target.exists() and _folder_listing(target) == []


def test_fetch_tries_the_mirrors_in_order(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/missing", mirrors=[f"{server}/wrong", f"{server}/good"]))
    assert store.fetch("blob").read_bytes() == PAYLOAD
    assert _Handler.hits == {"missing": 1, "wrong": 1, "good": 1}


def test_a_download_larger_than_the_declared_size_is_cut_off(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/good", size_bytes=1000))
    with pytest.raises(FairbenchError, match="expected 1000"):
        store.fetch("blob")
    assert _folder_listing(store.asset_path("blob")) == []


def test_trust_on_first_use_pins_the_first_copy(tmp_path, monkeypatch, server, online) -> None:
    entry = _entry(url=f"{server}/good", sha256=None, verify="trust-on-first-use", sha256_prefix=SHA[:16],
                   source="no public source gives the full hash")
    _use_manifest(tmp_path, monkeypatch, entry)
    path = store.fetch("blob")
    pins = json.loads((store.assets_root() / store.PINS).read_text())
    assert pins["blob"]["sha256"] == SHA
    assert store.status("blob").state is store.AssetState.VERIFIED
    path.write_bytes(OTHER)  # a changed copy no longer matches the pin
    assert store.status("blob").state is store.AssetState.CORRUPT


def test_trust_on_first_use_refuses_a_copy_that_contradicts_the_prefix(tmp_path, monkeypatch, server, online) -> None:
    entry = _entry(url=f"{server}/wrong", sha256=None, verify="trust-on-first-use", sha256_prefix=SHA[:16],
                   source="no public source gives the full hash")
    _use_manifest(tmp_path, monkeypatch, entry)
    with pytest.raises(FairbenchError, match=f"starting {SHA[:16]}"):
        store.fetch("blob")
    assert not (store.assets_root() / store.PINS).exists()
    target = store.asset_path("blob")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(OTHER)  # placed by hand: also refused
    assert store.status("blob").state is store.AssetState.CORRUPT


class _NetworkUsed(Exception):
    pass


def test_offline_never_opens_a_socket(tmp_path, monkeypatch, server) -> None:
    _use_manifest(tmp_path, monkeypatch, _entry(url=f"{server}/good"))

    def no_network(*args: object, **kwargs: object) -> None:
        raise _NetworkUsed(args)

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(FairbenchError, match="FAIRBENCH_OFFLINE=1"):
        store.require("blob")
    with pytest.raises(FairbenchError, match="FAIRBENCH_OFFLINE=1"):
        store.fetch("blob")
    assert store.status("blob").state is store.AssetState.MISSING
    result = CliRunner().invoke(assets_app, ["fetch", "--all"])
    assert result.exit_code == 2 and not isinstance(result.exception, _NetworkUsed)
    assert _Handler.hits == {}
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "0")  # the patch really does catch a download
    with pytest.raises(_NetworkUsed):
        store.fetch("blob")


# --------------------------------------------------------------------------------------------- tasks


def test_assets_needed_by_tasks_maps_spec_names_through_used_by(tmp_path, monkeypatch) -> None:
    _use_manifest(
        tmp_path, monkeypatch,
        _entry("inception", used_by=["inception-v3"]), _entry("niqe-params", used_by=["niqe"]), _entry("unused"),
    )
    task = SimpleNamespace(feature_network={"id": "inception-v3", "sha256": SHA}, metrics=["fd_l1", "niqe"])
    assert store.assets_needed_by_tasks(tasks=[task]) == {"inception", "niqe-params"}
    assert store.assets_needed_by_tasks(["unused"], tasks=[]) == {"unused"}
    assert store.assets_needed_by_tasks(["test-metric"], tasks=[]) == {"unused"}  # a used_by name
    assert store.assets_needed_by_tasks(tasks=list_tasks()) <= set(store.load_manifest())  # the installed tasks


# --------------------------------------------------------------------------------------------- CLI


def _cli(*args: str) -> object:
    return CliRunner().invoke(assets_app, list(args), env={"COLUMNS": "240"})


def _place(asset_id: str, data: bytes = PAYLOAD) -> Path:
    target = store.asset_path(asset_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def test_cli_list_shows_every_asset_with_its_state(tmp_path, monkeypatch) -> None:
    _use_manifest(
        tmp_path, monkeypatch, _entry("here", size_bytes=len(PAYLOAD)), _entry("gone"), _entry("bad"),
        _entry("face", url=None, sha256=None, user_supplied=True),
    )
    _place("here")
    _place("bad", OTHER)
    result = _cli("list")
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines() if line.count("│") > 3}
    assert "present" in lines["here"] and "51.2 kB" in lines["here"] and "CC0-1.0" in lines["here"]
    assert "missing" in lines["gone"] and "corrupt" in lines["bad"] and "user-supplied, not present" in lines["face"]
    assert str(store.asset_path("here").relative_to(store.assets_root())) in lines["here"]
    assert str(store.assets_root()) in result.output.splitlines()[0]  # the root once, in the title
    rows = {row["id"]: row for row in json.loads(_cli("list", "--json").output)}
    assert rows["here"]["state"] == "verified" and rows["bad"]["state"] == "corrupt"
    assert rows["gone"]["state"] == "missing" and rows["face"]["state"] == "user-supplied-missing"


def test_cli_list_never_splits_an_id_and_fits_80_columns(tmp_path, monkeypatch) -> None:
    long_ids = ("niqe-modelparameters", "inception-2015-12-05", "brisque-svm-weights")
    _use_manifest(tmp_path, monkeypatch, *(_entry(i) for i in long_ids))
    result = CliRunner().invoke(assets_app, ["list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[-1].startswith("└") and lines[-1].endswith("┘")  # the table is whole, not cropped
    first_cells = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert set(long_ids) <= set(first_cells)  # each id whole on one line
    assert set(first_cells) - {""} == set(long_ids)  # and no line carries a piece of one


def test_cli_verify_exit_codes(tmp_path, monkeypatch) -> None:
    _use_manifest(
        tmp_path, monkeypatch, _entry("needed"), _entry("optional"),
        _entry("face", url=None, sha256=None, user_supplied=True),
    )
    monkeypatch.setattr(store, "assets_needed_by_tasks", lambda *a, **k: {"needed"})
    result = _cli("verify")
    assert result.exit_code == 1
    assert "needed\tmissing\tneeded" in result.output and "face\tuser-supplied, not present\toptional" in result.output
    assert f"place needed.bin (sha256 {SHA}) at {store.asset_path('needed')}" in result.output

    _place("needed")
    result = _cli("verify")
    assert result.exit_code == 0, result.output  # the optional and the user-supplied ones do not fail it
    assert "needed\tpresent\tneeded" in result.output and "optional\tmissing\toptional" in result.output

    _place("needed", OTHER)
    result = _cli("verify")
    assert result.exit_code == 1 and "needed\tcorrupt\tneeded" in result.output and "refused" in result.output

    _place("needed")
    assert _cli("verify", "optional").exit_code == 1  # named explicitly: must be there
    assert _cli("verify", "face").exit_code == 1
    assert _cli("verify", "needed").exit_code == 0


def test_cli_fetch(tmp_path, monkeypatch, server, online) -> None:
    _use_manifest(
        tmp_path, monkeypatch, _entry("one", url=f"{server}/good"),
        _entry("face", url=None, sha256=None, user_supplied=True),
    )
    result = _cli("fetch")
    assert result.exit_code == 2 and "--all" in result.output
    result = _cli("fetch", "--all")
    assert result.exit_code == 0, result.output
    assert f"one: {store.asset_path('one')}" in result.output and "skipped face" in result.output
    assert store.asset_path("one").read_bytes() == PAYLOAD
    result = _cli("fetch", "face")
    assert result.exit_code == 2 and "user-supplied" in result.output
    result = _cli("fetch", "nope")
    assert result.exit_code == 2 and "unknown asset 'nope'" in result.output
