"""`python -m fairbench.results check PATH...`: every result file under PATH must still load through the strict
reader, so a change to the contract that would orphan committed results fails before it is merged."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from fairbench.results.io import read_result, result_paths

USAGE = "usage: python -m fairbench.results check PATH...   (result JSONs, or folders searched recursively)"


def result_files(target: Path) -> list[Path]:
    """`target` itself, or the result files under it (`result_paths`)."""
    return [target] if target.is_file() else result_paths(target)


def check(targets: list[Path]) -> tuple[int, list[str]]:
    """(result files found, one `path: why` line per target with none or file that does not load)."""
    n, problems = 0, []
    for target in targets:
        files = result_files(target) if target.exists() else []
        if not files:
            problems.append(f"{target}: no result files")
        n += len(files)
        for path in files:
            try:
                read_result(path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
                problems.append(f"{path}: {' '.join(str(exc).split()) or type(exc).__name__}")
    return n, problems


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "check":
        print(USAGE, file=sys.stderr)
        return 2
    n, problems = check([Path(a) for a in argv[1:]])
    for line in problems:
        print(line, file=sys.stderr)
    print(f"{n} result files checked, {len(problems)} problem{'' if len(problems) == 1 else 's'}")
    return 1 if problems else 0
