"""1-D regression on a sine: the overfitting and regularisation lessons' data."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor

from dlbasics.checks import check_choice, check_int, check_number
from dlbasics.data.base import BatchSize, Split, TensorDataModule

TARGETS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin": torch.sin,
    "sin_plus_linear": lambda x: torch.sin(x) + 0.5 * x,
}


class SineDataModule(TensorDataModule):
    """y = f(x) + noise with x evenly spaced on ``[x_min, x_max]``.

    Training: ``n_train`` points with noise std ``noise_std``. Validation and test: ``n_eval`` points on
    the same interval with noise std ``eval_noise_std`` (0: the true function, and the two splits are the same
    points: validation is then tagged ``val_on_test/`` in TensorBoard), drawn independently.
    L3 uses ``sin_plus_linear``, 20 train points, noise 0.2; L5 uses ``sin``, 30 points, noise 0.3,
    noiseless evaluation.

    Args:
        target: ``sin`` or ``sin_plus_linear`` (sin x + 0.5 x).
        n_train: number of training points.
        n_eval: number of validation and of test points.
        noise_std: noise standard deviation of the training targets.
        eval_noise_std: noise standard deviation of the validation and test targets.
        x_min: left end of the interval.
        x_max: right end of the interval.
        batch_size: training batch size, or ``"full"``.
        eval_batch_size: batch size for validation and test; None uses ``batch_size``.
        seed: seed of the noise and the training order.
    """

    task = "regression"

    def __init__(self, target: Literal["sin", "sin_plus_linear"] = "sin", n_train: int = 30, n_eval: int = 100,
                 noise_std: float = 0.3, eval_noise_std: float = 0.0, x_min: float = -3.0, x_max: float = 3.0,
                 batch_size: BatchSize = "full", eval_batch_size: BatchSize | None = None, seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        check_choice(target, "target", list(TARGETS))
        check_int(n_train, "n_train", minimum=2)
        check_int(n_eval, "n_eval", minimum=2)
        check_number(noise_std, "noise_std", minimum=0.0)
        check_number(eval_noise_std, "eval_noise_std", minimum=0.0)
        if not x_min < x_max:
            raise ValueError(f"x_min {x_min} must be below x_max {x_max}")
        self.target, self.n_train, self.n_eval = target, n_train, n_eval
        self.noise_std, self.eval_noise_std, self.x_min, self.x_max = noise_std, eval_noise_std, x_min, x_max

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (1,)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def validation_split(self) -> str | None:
        """``"test"`` when ``eval_noise_std`` is 0: the validation and test points are then the same (the true
        function on one grid), so validation measures the test points and is tagged ``val_on_test/``."""
        return "test" if self.eval_noise_std == 0 else "val"

    def true_function(self, x: Tensor) -> Tensor:
        """The noiseless target at ``x``."""
        return TARGETS[self.target](x)

    def build_splits(self) -> dict[str, Split]:
        generator = torch.Generator().manual_seed(self.seed)

        def draw(n: int, std: float) -> Split:
            x = torch.linspace(self.x_min, self.x_max, n).unsqueeze(1)  # (n, 1)
            return x, self.true_function(x) + std * torch.randn(n, 1, generator=generator)

        train = draw(self.n_train, self.noise_std)
        return {"train": train, "val": draw(self.n_eval, self.eval_noise_std),
                "test": draw(self.n_eval, self.eval_noise_std)}
