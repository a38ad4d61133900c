"""Write examples/moons.csv: the moons_mlp config's points, make_moons(2000, noise=0.25, random_state=0).

Run from the repository root: ``python examples/make_moons_csv.py`` (or give another path as the argument).
Columns x1, x2 (6 significant digits) and y (0 or 1), one row per point in make_moons' order, so
``TableFileDataModule`` on this file splits it as ``MoonsDataModule(seed=0)`` splits its points.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

from sklearn.datasets import make_moons

DEFAULT = Path(__file__).with_name("moons.csv")


def write_moons(path: Path = DEFAULT, n_samples: int = 2000, noise: float = 0.25, seed: int = 0) -> Path:
    x, y = make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["x1", "x2", "y"])
        writer.writerows([f"{a:.6g}", f"{b:.6g}", int(label)] for (a, b), label in zip(x, y))
    return path


if __name__ == "__main__":
    print(write_moons(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT))
