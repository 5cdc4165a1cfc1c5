"""Code the tests share, and the two paths they resolve everything else against.

REPO_ROOT is computed here, once, so a test file can move between folders without its paths breaking."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_DIR = REPO_ROOT / "tests" / "fixtures"
