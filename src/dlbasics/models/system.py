"""Shared Lightning "system": owns a network, the loss, the metrics, logging and the optimizer."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from dlbasics.activations import activation_name, make_activation
from dlbasics.checks import check_callable
from dlbasics.models.components import MLP

NetworkFactory = Callable[[Sequence[int], int], nn.Module]
"""Builds the network from ``(input_shape, num_outputs)``: a network class, or a ``functools.partial`` of one with
its other arguments. In YAML: ``class_path`` (e.g. ``dlbasics.models.components.MLP``) and ``init_args``."""

# Lightning's own instantiator: ``load_from_checkpoint`` rebuilds a model whose hparams carry it with jsonargparse.
CLI_INSTANTIATOR = "lightning.pytorch.cli.instantiate_module"
PLAIN = (bool, int, float, str, type(None))
# ModuleDict keys can't be "train" (an nn.Module method), hence the trainer-stage names.
STAGE_KEYS = {"train": "fit", "val": "validate", "test": "test"}


def check_optimizer(optimizer: OptimizerCallable, lr_scheduler: LRSchedulerCallable | None) -> None:
    """Build the optimizer (and scheduler) once on a stand-in parameter, so that settings torch refuses, such as a
    negative learning rate or weight decay, fail when the model is built: before the trainer creates a run folder."""
    probe = optimizer([nn.Parameter(torch.zeros(1, 1))])  # 2-D: some optimizers (Muon) take only matrices
    if lr_scheduler is not None:
        lr_scheduler(probe)


def network_config(network: NetworkFactory) -> dict[str, Any] | None:
    """``{"class_path", "init_args"}`` of a network class or a ``partial`` of one, as the CLI writes it; ``None``
    when the factory is something else (a lambda) or holds values a checkpoint can't keep as plain data."""
    kwargs: dict[str, Any] = {}
    if isinstance(network, functools.partial):
        kwargs = dict(network.keywords)
        if not network.args and isinstance(network.func, type):
            network = network.func  # partial(MLP, hidden_sizes=[8])
        elif network.args and isinstance(network.args[-1], type):
            network = network.args[-1]  # jsonargparse's: partial(wrapper, instantiator, MLP, **init_args)
        else:
            return None
    if not isinstance(network, type) or not all(is_plain(v) for v in kwargs.values()):
        return None
    return {"class_path": f"{network.__module__}.{network.__qualname__}", "init_args": kwargs}


def is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(is_plain(v) for v in value)
    return isinstance(value, PLAIN)


class System(LightningModule):
    """Base of ``Classifier`` and ``Regressor``: everything but the loss and the metrics.

    Args:
        input_shape: shape of one input without the batch dimension (linked from the datamodule).
        num_outputs: number of classes or regression targets (linked from the datamodule).
        network: builds the network from ``(input_shape, num_outputs)``: any ``nn.Module`` class whose first two
            arguments are those, with its other arguments in ``init_args`` (``dlbasics.models.components.MLP``,
            ``dlbasics.models.components.SmallCNN``, or your own).
        optimizer: optimizer factory; in YAML a ``class_path`` such as ``torch.optim.AdamW`` with
            ``init_args`` (``lr``, ``weight_decay``, ...).
        lr_scheduler: optional learning-rate scheduler factory, stepped every epoch
            (``ReduceLROnPlateau`` watches ``val/loss``).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (2,),
        num_outputs: int = 2,
        network: NetworkFactory = MLP,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        check_callable(network, "network", "functools.partial(dlbasics.models.components.MLP, hidden_sizes=[64])")
        check_callable(optimizer, "optimizer", "functools.partial(torch.optim.Adam, lr=1e-3)")
        if lr_scheduler is not None:
            check_callable(lr_scheduler, "lr_scheduler", "torch.optim.lr_scheduler.ExponentialLR")
        check_optimizer(optimizer, lr_scheduler)
        self.network = network(tuple(input_shape), num_outputs)
        # Only plain values go into the checkpoint (it must load with weights_only=True); the optimizer and
        # scheduler are recorded in the run's config.yaml instead.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self._describe_network(network)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.example_input_array = torch.zeros(2, *input_shape)
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("fit", "validate", "test")})
        metrics = self.make_metrics(num_outputs)
        self.metrics = nn.ModuleDict({stage: metrics.clone() for stage in ("fit", "validate", "test")})

    def setup(self, stage: str) -> None:
        # The data's shapes reach the model through the CLI's links; built by hand, a mismatch would otherwise be a
        # shape error deep inside the network's first layer.
        data = getattr(self.trainer, "datamodule", None)
        for name in ("input_shape", "num_outputs"):
            mine, theirs = self.hparams.get(name), getattr(data, name, None)
            if theirs is not None and mine is not None and tuple(np.atleast_1d(mine)) != tuple(np.atleast_1d(theirs)):
                raise ValueError(f"the model was built with {name} {mine!r} but {type(data).__name__} gives "
                                 f"{theirs!r}; build it with {name}=datamodule.{name}")

    def _describe_network(self, network: NetworkFactory) -> None:
        """Hyperparameters in the form LightningCLI saves, so ``load_from_checkpoint(path)`` rebuilds the network.

        Built by the CLI, the network is already its config (``{"class_path", "init_args"}``). Built in Python
        from a class or a ``partial`` of one, it is described the same way; from any other callable it can't be,
        and ``load_from_checkpoint(path, network=...)`` must name it again.
        """
        if isinstance(self.hparams.get("network"), dict):
            return
        config = network_config(network)
        if config is None:
            del self.hparams["network"]
            return
        self.hparams.update(network=config, _class_path=f"{type(self).__module__}.{type(self).__qualname__}",
                            _instantiator=CLI_INSTANTIATOR)

    def make_metrics(self, num_outputs: int) -> MetricCollection:
        """The metrics of one stage, keyed by their short name (``acc``, ``r2``, ...)."""
        raise NotImplementedError

    def loss(self, outputs: Tensor, targets: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.network(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self._shared_step(batch, "test")

    def _shared_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        loss = self.update_metrics(batch, stage)
        self.log_metrics(stage)
        return loss

    def update_metrics(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        """Run the network on a batch and add it to the stage's loss and metrics; return the batch's loss.

        Logging is ``log_metrics``'s: a ``SeedEnsemble`` updates each member's metrics, then logs them itself.
        """
        x, y = batch
        outputs = self.network(x)
        loss = self.loss(outputs, y)
        # Metric objects are logged, so Lightning computes them over the whole epoch and syncs them
        # across DDP ranks: the epoch's loss is the sample-weighted mean over the full split.
        key = STAGE_KEYS[stage]
        self.losses[key].update(loss.detach(), weight=len(y))
        self.metrics[key].update(outputs.detach(), y)
        return loss

    def log_metrics(self, stage: str, log: Callable[..., None] | None = None, suffix: str = "") -> None:
        """Log the stage's loss and metrics as ``<stage>/<name><suffix>`` (``train/loss``, ``val/acc/seed_3``).

        Args:
            stage: ``train``, ``val`` or ``test``.
            log: the ``LightningModule.log`` to log with; None: this module's own.
            suffix: appended to every name.
        """
        log = self.log if log is None else log
        key = STAGE_KEYS[stage]
        log(f"{stage}/loss{suffix}", self.losses[key], on_step=False, on_epoch=True, prog_bar=True)
        for name, metric in self.metrics[key].items():
            log(f"{stage}/{name}{suffix}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc")

    def configure_optimizers(self):  # noqa: ANN201 (Lightning accepts several return types)
        optimizer = self.optimizer_factory(self.parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": "epoch"}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = "val/loss"
        return {"optimizer": optimizer, "lr_scheduler": config}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A callback (ActivationSwap) may have replaced activation modules; the hyperparameters still name the
        # original ones. Record what the network holds now, as plain values: {module name: [kind, slope]}.
        checkpoint["activations"] = {
            name: [kind, getattr(module, "negative_slope", None)]
            for name, module in self.named_modules() if (kind := activation_name(module)) is not None
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Rebuild the activations the checkpoint was trained with, so load_from_checkpoint and
        # `dlbasics test --ckpt_path` use the network that was trained, not the one the config first built.
        for name, (kind, slope) in checkpoint.get("activations", {}).items():
            module = self.get_submodule(name)
            if activation_name(module) != kind or getattr(module, "negative_slope", None) != slope:
                parent, _, child = name.rpartition(".")
                new = make_activation(kind) if slope is None else make_activation(kind, slope)
                setattr(self.get_submodule(parent), child, new.train(module.training))
