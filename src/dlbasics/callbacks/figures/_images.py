"""One model input drawn as a picture (or, for vectors, its values): the figure callbacks that show inputs use it."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.axes import Axes
from torch import Tensor


def reshaped(x: Tensor, image_shape: tuple[int, ...] | None) -> Tensor:
    """One input reshaped to ``image_shape`` (unchanged if None); a ValueError if the sizes differ."""
    if image_shape is None:
        return x
    if x.numel() != math.prod(image_shape):
        raise ValueError(f"image_shape {tuple(image_shape)} holds {math.prod(image_shape)} values but an input of "
                         f"shape {tuple(x.shape)} has {x.numel()}; give a shape with as many values")
    return x.reshape(image_shape)


def as_image(x: Tensor, image_shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """One input as a picture scaled to [0, 1] by its own min and max: (H, W) grey or (H, W, 3) colour.

    Min-max per image undoes any normalisation without knowing it. ``image_shape`` first reshapes the input
    (e.g. a flat 784 to ``(28, 28)``). ``(C, H, W)`` inputs with C other than 1 or 3 show their channel mean.
    None for inputs that are not pictures (vectors).
    """
    v = reshaped(x.detach().float().cpu(), image_shape)
    if v.dim() == 3:  # (C, H, W) as torch stores images
        v = v.permute(1, 2, 0) if v.shape[0] == 3 else v.mean(0)
    if v.dim() != 2 and not (v.dim() == 3 and v.shape[-1] == 3):
        return None
    low, high = v.min(), v.max()
    return ((v - low) / (high - low) if high > low else v * 0).numpy()


def draw_input(ax: Axes, x: Tensor, image_shape: tuple[int, ...] | None = None) -> None:
    """Show one input on ``ax``: as a picture (see ``as_image``); a vector as its values (up to 8) or as bars."""
    image = as_image(x, image_shape)
    ax.set_xticks([])
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_yticks([])
        return
    values = x.detach().float().cpu().reshape(-1).numpy()
    if len(values) <= 8:  # e.g. a 2-D point: the numbers say more than bars
        text = "\n".join(f"x[{i}] = {v:.3g}" for i, v in enumerate(values))
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8, family="monospace", transform=ax.transAxes)
        ax.set_yticks([])
    else:
        ax.bar(np.arange(len(values)), values, color="0.4")
        ax.axhline(0, color="k", linewidth=0.5)
        ax.tick_params(axis="y", labelsize=6)
