"""Checking a foreign weights file against an architecture before loading it, with problems named.

A converted generator or a downloaded judge that does not fit must fail with the keys that are wrong, not
with torch's wall of text (or, worse, load half of it).
"""

from __future__ import annotations

from collections.abc import Mapping


def _listed(keys: list[str], shown: int) -> str:
    return f"{', '.join(keys[:shown])}{' ...' if len(keys) > shown else ''} ({len(keys)})"


def layout_problems(
    expected: Mapping[str, tuple[int, ...]], got: Mapping[str, tuple[int, ...]], shown: int = 5
) -> list[str]:
    """Missing keys, unexpected keys and wrong shapes of `got` against `expected` (key -> shape); [] when it fits."""
    problems = []
    if missing := sorted(set(expected) - set(got)):
        problems.append(f"missing keys {_listed(missing, shown)}")
    if unexpected := sorted(set(got) - set(expected)):
        problems.append(f"unexpected keys {_listed(unexpected, shown)}")
    wrong = [
        f"{k} {list(got[k])} (architecture: {list(expected[k])})"
        for k in sorted(set(got) & set(expected))
        if tuple(got[k]) != tuple(expected[k])
    ]
    if wrong:
        problems.append(f"wrong shapes {'; '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}")
    return problems
