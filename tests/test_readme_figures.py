"""docs/readme_figures.py (``make readme-figures``): the boundary strip read back from a run's TensorBoard images."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torch.utils.tensorboard import SummaryWriter

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "docs" / "readme_figures.py")
readme_figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_figures)


def slider(folder: Path, steps: int) -> None:
    writer = SummaryWriter(str(folder))
    for step in range(steps):  # frame k is filled with grey level 40 * k
        frame = np.full((10, 16, 3), 40 * step, np.uint8)
        writer.add_image(readme_figures.BOUNDARY_TAG, frame, step, dataformats="HWC")
    writer.close()


def test_the_strip_holds_the_first_the_last_and_evenly_spaced_frames(tmp_path):
    slider(tmp_path / "noisy_none" / "seeds", steps=7)
    strip = readme_figures.boundary_frames(tmp_path / "noisy_none")
    assert strip.size == (4 * 16, 10)
    levels = [strip.getpixel((16 * i + 8, 5))[0] for i in range(4)]
    assert levels == [0, 80, 160, 240]  # frames 0, 2, 4, 6


def test_a_run_with_too_few_frames_is_an_error(tmp_path):
    slider(tmp_path / "run", steps=2)
    with pytest.raises(RuntimeError, match="has 2 boundary/train images, fewer than 4"):
        readme_figures.boundary_frames(tmp_path / "run")


def test_small_figures_are_at_most_the_readme_width(tmp_path):
    path = readme_figures.small(Image.new("RGB", (2000, 1000), "white"), tmp_path / "x.png")
    assert Image.open(path).size == (readme_figures.WIDTH, 360)


def test_the_readme_shows_every_figure_the_script_writes():
    readme = (ROOT / "README.md").read_text()
    for name in ("boundary_forming", "vanishing_gradients", "claim_with_seed_band", "report_page"):
        assert f"docs/figures/{name}.png" in readme and (ROOT / "docs" / "figures" / f"{name}.png").is_file()
