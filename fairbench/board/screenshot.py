"""A picture of the HTML leaderboard, taken with headless Chromium (the README shows it; tests use the same calls).

    python -m fairbench.board.screenshot leaderboard/leaderboard.html leaderboard/screenshot.png

Chromium is not a dependency: without it this says so in one line and exits 2.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fairbench.errors import FairbenchError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """The first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        if found := shutil.which(name):
            return found
    return None


def run_chromium(url: str, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on `url` with a throw-away profile; its console messages go to stderr (`:CONSOLE`)."""
    browser = find_chromium()
    if browser is None:
        raise FairbenchError("no Chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="fairbench-chromium-") as profile:
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *args, url,
        ]
        env = {**os.environ, "LANG": "C.UTF-8"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
    if proc.returncode != 0:
        tail = " ".join(proc.stderr.split())[-300:]
        raise FairbenchError(f"chromium exited with {proc.returncode}: {tail}")
    return proc


# Writes, into the <body>, where each sortable column's cell of each table's first row is on screen.
LAYOUT_PROBE = """<script>(function(){var out=[];document.querySelectorAll('table.board').forEach(function(t){
var row=t.tBodies[0].rows[0],cells={};Array.prototype.forEach.call(t.tHead.rows[0].cells,function(th,i){
var k=th.getAttribute('data-key');if(k){var r=row.cells[i].getBoundingClientRect();cells[k]=[r.left,r.right,r.top];}});
out.push({task:t.getAttribute('data-task'),cells:cells});});
document.body.setAttribute('data-probe',JSON.stringify({width:window.innerWidth,height:window.innerHeight,tables:out}));
})();</script>"""


def probe_layout(text: str, base: Path, scratch: Path, width: int = 1280,
                 height: int = 800) -> tuple[dict[str, Any] | None, list[str]]:
    """Where each board table's first-row cells lie in a `width` x `height` window (the page's links resolved in
    `base`), and the lines the page logged to the console; None for the first when the page's script did not run.
    The committed board's check and the HTML tests ask the same question, so they share this."""
    probed = scratch / "probe.html"
    probed.write_text(text.replace("<head>", f'<head><base href="{base.resolve().as_uri()}/">', 1)
                      .replace("</body>", LAYOUT_PROBE + "</body>"), encoding="utf-8")
    proc = run_chromium(probed.as_uri(), f"--window-size={width},{height}", "--dump-dom")
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    found = re.search(r'<body[^>]*\sdata-probe="([^"]*)"', proc.stdout)
    return (None if found is None else json.loads(html.unescape(found.group(1)))), console


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 760, scale_to: int = 960) -> Path:
    """A PNG of the page's first screen, scaled to `scale_to` pixels wide with a 256-colour palette (small)."""
    from PIL import Image

    from fairbench.atomic import atomic_path

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.png"
        run_chromium(Path(page).resolve().as_uri(), f"--window-size={width},{height}", f"--screenshot={raw}")
        image = Image.open(raw).convert("RGB")
        image = image.resize((scale_to, round(image.height * scale_to / image.width)), Image.LANCZOS)
        with atomic_path(out) as target:
            image.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(target, format="PNG", optimize=True)
    return Path(out)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m fairbench.board.screenshot PAGE.html OUT.png", file=sys.stderr)
        return 2
    try:
        print(screenshot(Path(argv[0]), Path(argv[1])))
    except FairbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
