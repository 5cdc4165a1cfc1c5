"""A built, non-editable wheel carries every module, the task specs and the shipped weights, and loads them from
site-packages."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # From a copy of what the build reads: setuptools reuses a checkout's build/lib, where modules since moved or
    # deleted would still be, and end up in the wheel.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("fairbench", "baselines", "tasks"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=build, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheels = list(out.glob("fairbench-*.whl"))
    assert len(wheels) == 1
    return wheels[0]


def test_wheel_contains_tasks_judges_and_both_packages(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for task in ROOT.glob("tasks/*.yaml"):
        assert f"fairbench/_tasks/{task.name}" in names
    for weights in ROOT.glob("fairbench/judges/weights/*.safetensors"):
        assert f"fairbench/judges/weights/{weights.name}" in names
        assert f"fairbench/judges/weights/{weights.stem}.json" in names
    for weights in ROOT.glob("fairbench/features/weights/*.safetensors"):
        assert f"fairbench/features/weights/{weights.name}" in names
    # pyproject lists packages by hand: a sub-package missing there would be missing from every install
    source = {p.relative_to(ROOT).as_posix() for pkg in ("fairbench", "baselines") for p in (ROOT / pkg).rglob("*.py")}
    assert source - names == set()
    assert "baselines/repfair.py" in names and "fairbench/cli/__init__.py" in names
    assert "fairbench/assets/manifest.yaml" in names  # the asset manifest ships with the package
    for example in ROOT.glob("fairbench/examples/*.pt"):  # the quickstart's checkpoints and their hashes
        assert f"fairbench/examples/{example.name}" in names
    assert "fairbench/examples/examples.json" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "fairbench = fairbench.cli:main" in text and "[fairbench.plugins]" in text


def test_installed_wheel_loads_tasks_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import fairbench.task_registry as t, fairbench.judges as j, json; "
        "assert t.__file__.startswith(%r), t.__file__; "
        "specs = t.list_tasks(); "
        "[j.load_judge(s) for s in specs if s.judge.kind == 'pinned' and not s.judge.trained_on_first_use]; "
        "print(json.dumps(sorted(s.id for s in specs)))" % str(site)
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = sorted(p.stem for p in ROOT.glob("tasks/*.yaml"))
    assert proc.stdout.strip() == str(expected).replace("'", '"')
