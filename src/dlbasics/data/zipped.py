"""Several datamodules side by side: each batch is a list of one batch per datamodule (a ``SeedEnsemble``'s data)."""

from __future__ import annotations

from collections.abc import Sequence

from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import CombinedLoader


class ZippedDataModule(LightningDataModule):
    """The datamodules of an ensemble's members, batched in step: batch ``i`` is ``[batch i of each datamodule]``.

    Each datamodule keeps its own data, batch order and epoch shuffling (Lightning's ``CombinedLoader`` calls each
    loader's ``sampler.set_epoch``); the loaders are zipped in ``min_size`` mode, so the datamodules should give
    the same number of batches (the same config at other seeds does). A stage whose loaders all come back empty
    (``[]``: no validation split) is skipped, as it is for one datamodule.

    Args:
        datamodules: one per ensemble member, in the members' order.
    """

    def __init__(self, datamodules: Sequence[LightningDataModule]) -> None:
        super().__init__()
        if not datamodules:
            raise ValueError("ZippedDataModule needs at least one datamodule, got none")
        self.datamodules = list(datamodules)

    def prepare_data(self) -> None:
        for data in self.datamodules:
            data.prepare_data()

    def setup(self, stage: str) -> None:
        for data in self.datamodules:
            data.trainer = self.trainer  # for DDP ranks and the stage, as Lightning sets it on one datamodule
            data.setup(stage)

    def train_dataloader(self) -> CombinedLoader:
        return self._zip("train", [data.train_dataloader() for data in self.datamodules])

    def val_dataloader(self) -> CombinedLoader | list:
        return self._zip("val", [data.val_dataloader() for data in self.datamodules])

    def test_dataloader(self) -> CombinedLoader | list:
        return self._zip("test", [data.test_dataloader() for data in self.datamodules])

    def _zip(self, stage: str, loaders: list) -> CombinedLoader | list:
        empty = [isinstance(loader, list) and not loader for loader in loaders]
        if all(empty):
            return []
        if any(empty):
            raise ValueError(f"ZippedDataModule: the {stage} loaders of datamodules "
                             f"{[i for i, e in enumerate(empty) if e]} are empty and the others are not; "
                             "zip datamodules built from the same settings")
        lengths = {len(loader) for loader in loaders if hasattr(loader, "__len__")}
        if len(lengths) > 1:
            raise ValueError(f"ZippedDataModule: the {stage} loaders give {sorted(lengths)} batches; zipped, the "
                             "longer ones would be cut short. Zip datamodules whose splits have the same size")
        return CombinedLoader(loaders, mode="min_size")
