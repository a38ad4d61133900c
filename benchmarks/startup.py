"""``python -m benchmarks.startup``: how long the answers that train nothing take, as a user starts them.

Each command runs as a fresh process (``python -m dlbasics ...``), ``--repeats`` times, interleaved with the
others; the table gives the median wall-clock seconds, and ``import lightning.pytorch`` alone for comparison.
``--src DIR`` times another checkout's ``src`` (an older commit, to compare before and after a change).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "dlbasics --help": ["-m", "dlbasics", "--help"],
    "dlbasics --version": ["-m", "dlbasics", "--version"],
    "dlbasics (bare)": ["-m", "dlbasics"],
    "dlbasics lesson --list": ["-m", "dlbasics", "lesson", "--list"],
    "import lightning.pytorch (reference)": ["-c", "import lightning.pytorch"],
}
TARGET_S = 1.5  # issue 9: the answers that train nothing take at most this long on the project's 2-core machine


def time_commands(repeats: int, src: Path | None) -> dict[str, list[float]]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    seconds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, args in COMMANDS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, *args], env=env, capture_output=True, timeout=120, check=False)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=7, help="runs of each command (default: 7)")
    p.add_argument("--src", type=Path, default=None, help="time this src folder instead of the installed package")
    args = p.parse_args(argv)
    seconds = time_commands(args.repeats, args.src)
    print(f"| command | median s (of {args.repeats}) | min s | target <= {TARGET_S} s |\n|---|---|---|---|")
    for name, values in seconds.items():
        target = "" if "reference" in name else ("met" if statistics.median(values) <= TARGET_S else "MISSED")
        print(f"| `{name}` | {statistics.median(values):.2f} | {min(values):.2f} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
