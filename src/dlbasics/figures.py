"""The one figure helper: save a matplotlib figure as a PNG in the run's folder and log it to TensorBoard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imsave
from matplotlib.figure import Figure

from dlbasics.loggers import tag_for

DPI = 100


def new_figure(width: float = 6.0, height: float = 4.0, layout: str = "constrained") -> Figure:
    """A figure that needs no GUI backend (safe headless and off the main thread).

    ``layout="tight"`` spaces a figure in one pass; figures drawn during training use it, as matplotlib's
    constrained layout can take most of a figure's drawing time (measured in benchmarks/RESULTS.md).
    """
    return Figure(figsize=(width, height), layout=layout)


def figure_dir(trainer: Trainer) -> Path:
    """``<run folder>/figures``: the first logger's version folder, or ``default_root_dir`` without a logger."""
    # Not trainer.log_dir: it is a broadcast every rank must join, and only rank zero draws.
    root = None
    if trainer.loggers:
        logger = trainer.loggers[0]
        root = logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir
    return Path(root or trainer.default_root_dir) / "figures"


def render(fig: Figure) -> np.ndarray:
    """``fig`` drawn once, as an ``(H, W, 3)`` uint8 RGB array (what the PNG and the TensorBoard image hold)."""
    fig.set_dpi(DPI)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_image(image: np.ndarray, path: Path) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as a PNG at ``path``, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, image, format="png")
    return path


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG at ``path``, creating the folder."""
    return save_image(render(fig), path)


def publish_figure(trainer: Trainer, fig: Figure, tag: str, filename: str) -> Path | None:
    """Save ``fig`` to ``figures/<filename>.png`` in the run folder and add it to every TensorBoard logger.

    The global step is the TensorBoard step, so the image slider follows training. Only rank zero writes;
    other ranks return None.

    Args:
        trainer: the running trainer (gives the run folder, the loggers and the global step).
        fig: the figure to publish.
        tag: TensorBoard tag, slash-grouped, e.g. ``"grad/flow"``.
        filename: file name without extension, e.g. ``"gradient_flow_epoch003"``.
    """
    if not trainer.is_global_zero:
        return None
    image = render(fig)  # drawn once for both: drawing is most of a figure's cost
    path = save_image(image, figure_dir(trainer) / f"{filename}.png")
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(tag_for(logger, tag), image, global_step=trainer.global_step, dataformats="HWC")
    return path
