"""Speed of the interactive page in a real browser (Debian's headless chromium). Not a test.

    python benchmarks/html_bench.py

For pages of 100,000 and 700,000 ops, and a million with as many messages, prints the file
size, the time the page takes to load and draw (`performance.now()` when its script ends),
the slowest of 20 redraws over zoom levels from the whole step to 1/512 of it, and the slowest
of 200 tooltips, as the page measures them itself when opened with `#bench`. Redraws are timed
twice: at once after the load (each zoom level met for the first time is sampled then) and
after the work the page does while idle (sampling its finest level and reading the coarser
ones off it), whose total and longest chore it also prints: a wheel or a drag during it waits
for one chore at most. The goals (issue 32): a redraw under 50 ms and a tooltip under 5 ms
at a million ops, a load under 3 s.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PAGES = {
    "1f1b p=16 m=3125 (100,000 ops)": ["-p", "16", "-m", "3125"],
    "1f1b p=64 m=5462 (699,136 ops)": ["-p", "64", "-m", "5462"],
    "1f1b p=64 m=8192, --comm-latency 0.1 (1,048,576 ops, 1,032,192 transfers)": [
        "-p", "64", "-m", "8192", "--comm-latency", "0.1",
    ],
}  # fmt: skip


def main() -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("needs Debian's chromium")
    with tempfile.TemporaryDirectory() as folder:
        for name, args in PAGES.items():
            page = Path(folder) / "page.html"
            subprocess.run(
                [sys.executable, "-m", "pipesim", "run", *args, "--html", str(page), "-f", "json"],
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            dom = subprocess.run(
                [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
                 f"file://{page}#bench"],
                capture_output=True, text=True, timeout=600, check=True,
            ).stdout  # fmt: skip
            figures = {
                key: float(value)
                for key, value in re.findall(r'data-([a-z-]+-ms)="([0-9.]+)"', dom)
            }
            size = page.stat().st_size / 1e6
            print(
                f"{name}: {size:.0f} MB, load {figures['load-ms'] / 1000:.1f} s, "
                f"redraw {figures['redraw-ms']:.0f} ms once idle "
                f"({figures['first-redraw-ms']:.0f} ms before; idle work "
                f"{figures['idle-ms']:.0f} ms, longest chore {figures['chore-ms']:.1f} ms), "
                f"tooltip {figures['hover-ms']:.1f} ms"
            )
    print(
        "goals (issue 32), at a million ops: load under 3 s, redraw under 50 ms, tooltip under 5 ms"
    )


if __name__ == "__main__":
    main()
