"""Redraw the README's figures (``make readme-figures``): run the lessons they come from and write small PNGs to
``docs/figures/``, so the README shows what the code draws today.

- ``boundary_forming.png``: the decision boundary of L4's noisy-label DropNet (no dropout) at four points of its
  training, read back from the run's TensorBoard images (the slider a user sees);
- ``vanishing_gradients.png``: L2.c, per-layer gradient sizes of the deep sigmoid net;
- ``claim_with_seed_band.png``: L4.c shows it, train and validation accuracy, the seeds' mean and band;
- ``report_page.png``: the top of ``index.html`` in headless Chromium (skipped, saying so, without a browser).

Usage: ``python docs/readme_figures.py [--out DIR] [--keep]``; the lessons run with their published seeds and
budgets in a temporary folder (kept with ``--keep``).
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import IMAGES, EventAccumulator

from dlbasics.lessons import run_lessons
from dlbasics.lessons.report_page import headless_browser

DOCS = Path(__file__).resolve().parent / "figures"
WIDTH = 720  # pixels: readable in a README column, small in the repository
BOUNDARY_RUN = "noisy_none"  # the DropNet run of lesson_dropout whose boundary slider (first seed) the README shows
BOUNDARY_TAG = "boundary/train"


def small(image: Image.Image, path: Path, width: int = WIDTH) -> Path:
    """Save ``image`` at most ``width`` pixels wide, as an optimised palette PNG."""
    if image.width > width:
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    image.convert("RGB").quantize(colors=128).save(path, optimize=True)
    return path


def boundary_frames(run_dir: Path, count: int = 4) -> Image.Image:
    """``count`` frames of the run's boundary slider (first, last and evenly between), side by side; the slider is
    in the event file of its first seed (``seed_0/``, or ``seeds/`` where the seeds trained together)."""
    frames = []
    for events_file in sorted(run_dir.glob("**/events.out.tfevents.*")):
        events = EventAccumulator(str(events_file), size_guidance={IMAGES: 0})
        events.Reload()
        frames = events.Images(BOUNDARY_TAG) if BOUNDARY_TAG in events.Tags()[IMAGES] else []
        if frames:
            break
    if len(frames) < count:
        raise RuntimeError(f"{run_dir} has {len(frames)} {BOUNDARY_TAG} images, fewer than {count}")
    picked = [frames[round(i * (len(frames) - 1) / (count - 1))] for i in range(count)]
    images = [Image.open(io.BytesIO(frame.encoded_image_string)).convert("RGB") for frame in picked]
    strip = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), "white")
    x = 0
    for image in images:
        strip.paste(image, (x, 0))
        x += image.width
    return strip


def screenshot(page: Path, path: Path) -> Path | None:
    """The page's top, 1000 x 1400 pixels, in headless Chromium; None without one."""
    found = headless_browser()
    if found is None:
        print("no headless browser (apt-get install chromium): report_page.png is not redrawn", file=sys.stderr)
        return None
    shot = path.with_suffix(".full.png")
    subprocess.run([found, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1000,1400", f"--screenshot={shot}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    small(Image.open(shot), path)
    shot.unlink()
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python docs/readme_figures.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=DOCS, help=f"folder of the figures (default: {DOCS})")
    p.add_argument("--keep", action="store_true", help="keep the lessons' logs (printed) instead of deleting them")
    args = p.parse_args(argv)
    logs = Path(tempfile.mkdtemp(prefix="dlbasics-readme-"))
    try:
        backprop, dropout = run_lessons(["backprop", "dropout"], out=logs)
        args.out.mkdir(parents=True, exist_ok=True)
        written = [
            small(boundary_frames(dropout.folder / BOUNDARY_RUN), args.out / "boundary_forming.png", width=1000),
            small(Image.open(backprop.folder / "figures" / "l2c_vanishing_gradients.png"),
                  args.out / "vanishing_gradients.png"),
            small(Image.open(dropout.folder / "figures" / "l4c_regularisation_shows_it.png"),
                  args.out / "claim_with_seed_band.png"),
            screenshot(dropout.page, args.out / "report_page.png"),
        ]
        for path in filter(None, written):
            print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    finally:
        if args.keep:
            print(f"lesson logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
