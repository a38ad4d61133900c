"""Your own data: a CSV file or a NumPy ``.npz`` of feature columns and one label (or target) column.

The file is read, checked and split when the datamodule is built, so a bad file is refused with one message
(naming the file, the line or row and the column) before a trainer creates any run folder. The file format is in
docs/own_data.md; reading and checking it is ``table_read``'s.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from dlbasics.checks import check_choice
from dlbasics.data.base import BatchSize, Split, TensorDataModule, take_splits
from dlbasics.data.splits import check_fractions, shuffled_split, stratified_split
from dlbasics.data.table_read import Table, class_indices, column, numbers, read_table

TASKS = ("classification", "regression")


class TableFileDataModule(TensorDataModule):
    """Features and a label (or target) column read from a ``.csv`` or ``.npz`` file, split like the built-in data.

    CSV: a header line naming the columns, then one line per sample; values are numbers (a label may be a
    word). ``.npz``: one array per column, ``(N,)``, or ``(N, F)`` for F feature columns under one name
    (``np.savez("my.npz", x=x, y=y)``; rows are counted from 0 in messages). Inputs are float32 ``(N, F)``.

    Classification: labels (numbers or words) become int64 classes 0..C-1 in the sorted order of their
    values, recorded in ``classes`` (``classes[i]`` is the value of class ``i``); the split is stratified, as
    ``MoonsDataModule``'s (same seed, same labels in the same order: the same split). Regression: float32
    targets ``(N, 1)``, as ``SineDataModule``'s; the split takes random rows (seeded), so a file sorted by x
    is not split into its left and right ends.

    Args:
        path: the ``.csv`` or ``.npz`` file; a relative path is read from the current folder (or else, in a clone,
            from the repository root, where ``examples/`` is).
        label: the column holding the class labels (classification) or the target (regression).
        features: the columns fed to the model, in this order; None uses every column but ``label``.
        task: ``classification`` (a Classifier's data) or ``regression`` (a Regressor's).
        val_fraction: share of the rows held out for validation (0: validate on the test split).
        test_fraction: share of the rows held out for testing.
        batch_size: training batch size, or ``"full"``.
        eval_batch_size: batch size for validation and test; None uses ``batch_size``.
        seed: seed of the splits and the training order.
    """

    def __init__(self, path: str, label: str = "y", features: list[str] | None = None,
                 task: Literal["classification", "regression"] = "classification", val_fraction: float = 0.0,
                 test_fraction: float = 0.25, batch_size: BatchSize = 64, eval_batch_size: BatchSize | None = None,
                 seed: int = 0) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        self.task = check_choice(task, "task", TASKS)  # type: ignore[assignment]
        check_fractions(val_fraction, test_fraction)
        self.path, self.label, self.val_fraction, self.test_fraction = str(path), label, val_fraction, test_fraction
        table = read_table(path)
        self.features = self._pick_features(table, column(table, label, "label"), features)
        x = np.concatenate([numbers(table, name) for name in self.features], axis=1)  # (N, F)
        self.classes: list | None = None
        if self.task == "classification":
            y, self.classes = class_indices(table, label)
            self._y = torch.from_numpy(y)
        else:
            self._y = torch.from_numpy(numbers(table, label)).float()  # (N, 1)
        self._x = torch.from_numpy(x).float()  # float64 -> float32 for MPS
        self._parts = self._split()  # now: a file too small for the splits fails before any run folder
        classes = "" if self.classes is None else f", classes {self.classes} -> 0..{len(self.classes) - 1}"
        rank_zero_info(f"{self.path}: {len(self._x)} rows, features {', '.join(self.features)}, "
                       f"{task} on {label!r}{classes}")

    @staticmethod
    def _pick_features(table: Table, label: str, features: list[str] | None) -> list[str]:
        if features is None:
            features = [name for name in table.columns if name != label]
        elif isinstance(features, str) or len(features) == 0:
            raise ValueError(f"features {features!r} must be a list of column names such as [x1, x2], or None for "
                             "every column but the label")
        else:
            features = [column(table, name, "feature") for name in features]
        if label in features or len(set(features)) < len(features):
            raise ValueError(f"features {features} must name each column once and not the label {label!r}")
        if not features:
            raise ValueError(f"{table.name} has no column besides the label {label!r}; it needs feature columns")
        return features

    def _split(self) -> tuple[Tensor, Tensor, Tensor]:
        failure = None
        try:
            if self.task == "classification":
                return stratified_split(self._y, self.val_fraction, self.test_fraction, self.seed)
            return shuffled_split(len(self._y), self.val_fraction, self.test_fraction, self.seed)
        except ValueError as err:  # split_sizes' or scikit-learn's (a class with one row)
            failure = err
        counts = ""
        if self.classes is not None:
            sizes = torch.bincount(self._y).tolist()
            counts = " (rows per class: " + ", ".join(f"{c!r}: {s}" for c, s in zip(self.classes, sizes)) + ")"
        raise ValueError(f"{self.path} has too few rows{counts} for val_fraction {self.val_fraction:g} and "
                         f"test_fraction {self.test_fraction:g}: {failure}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self._x.shape[1],)

    @property
    def num_outputs(self) -> int:
        return 1 if self.classes is None else len(self.classes)

    def setup(self, stage: str | None = None) -> None:
        # A forgotten `--data.task regression` under a Regressor (integer targets pass as classes) would fail deep in
        # its loss on int64 targets: say so before the first step (the CLI removes a refused run's folder). Imported
        # here: reading a file needs no model.
        from dlbasics.models import Classifier, Regressor

        model = self.trainer.lightning_module if self.trainer is not None else None
        for kind, task in ((Classifier, "classification"), (Regressor, "regression")):
            if isinstance(model, kind) and self.task != task:
                raise ValueError(f"{type(model).__name__} needs task {task!r}, but {self.path} is read for "
                                 f"{self.task}; set --data.task {task}")
        super().setup(stage)

    def build_splits(self) -> dict[str, Split]:
        return take_splits(self._x, self._y, self._parts)
