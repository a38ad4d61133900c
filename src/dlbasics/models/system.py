"""Shared Lightning "system": owns a network, the loss, the metrics, logging and the optimizer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from dlbasics.activations import activation_name, check_activation, make_activation
from dlbasics.models.components import MLP, SmallCNN
from dlbasics.models.components.mlp import check_dropout, check_sizes

NETWORKS = ("mlp", "cnn")


def build_network(network: str, input_shape: Sequence[int], num_outputs: int, hidden_sizes: Sequence[int],
                  activation: str, dropout: float, batch_norm: bool, channels: Sequence[int],
                  negative_slope: float) -> nn.Module:
    """Build the named network; see ``System`` for the arguments."""
    if network == "mlp":
        in_features = 1
        for size in check_sizes(input_shape, "input_shape"):
            in_features *= size
        return MLP(in_features, hidden_sizes, num_outputs, activation, dropout, batch_norm, negative_slope)
    if network == "cnn":
        return SmallCNN(input_shape, num_outputs, channels, hidden_sizes, activation, dropout, batch_norm,
                        negative_slope)
    raise ValueError(f"network {network!r} is not one of: {', '.join(NETWORKS)}")


def check_optimizer(optimizer: OptimizerCallable, lr_scheduler: LRSchedulerCallable | None) -> None:
    """Build the optimizer (and scheduler) once on a stand-in parameter, so that settings torch refuses, such as a
    negative learning rate or weight decay, fail when the model is built: before the trainer creates a run folder."""
    probe = optimizer([nn.Parameter(torch.zeros(1, 1))])  # 2-D: some optimizers (Muon) take only matrices
    if lr_scheduler is not None:
        lr_scheduler(probe)


class System(LightningModule):
    """Base of ``Classifier`` and ``Regressor``: everything but the loss and the metrics.

    Args:
        input_shape: shape of one input without the batch dimension (linked from the datamodule).
        num_outputs: number of classes or regression targets (linked from the datamodule).
        network: ``mlp`` (fully connected) or ``cnn`` (the small CNN; needs ``(C, H, W)`` inputs).
        hidden_sizes: widths of the hidden fully connected layers (for ``cnn``: of its head).
        activation: registry name of the hidden activation: sigmoid, tanh, relu, leaky_relu, elu, gelu,
            silu or identity.
        dropout: dropout probability after each hidden fully connected layer, in [0, 1).
        batch_norm: add batch norm before each hidden activation.
        channels: output channels of each conv block (``cnn`` only).
        negative_slope: negative slope of ``leaky_relu``.
        channels_last: keep the network's 4-D (conv) weights in channels-last memory format. Convolutions then
            give channels-last outputs, on which pooling is several times faster on CPU; the L7 CNN trains
            faster on 2 CPU cores (``python -m benchmarks --only mnist_cnn``). Results agree with the default
            format to float rounding, not bitwise. No effect on networks without conv layers.
        optimizer: optimizer factory; in YAML a ``class_path`` such as ``torch.optim.AdamW`` with
            ``init_args`` (``lr``, ``weight_decay``, ...).
        lr_scheduler: optional learning-rate scheduler factory, stepped every epoch
            (``ReduceLROnPlateau`` watches ``val/loss``).
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (2,),
        num_outputs: int = 2,
        network: Literal["mlp", "cnn"] = "mlp",
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        channels: Sequence[int] = (32, 64),
        negative_slope: float = 0.01,
        channels_last: bool = False,
        optimizer: OptimizerCallable = torch.optim.Adam,
        lr_scheduler: LRSchedulerCallable | None = None,
    ) -> None:
        super().__init__()
        check_activation(activation)
        check_dropout(dropout)
        check_sizes(hidden_sizes, "hidden_sizes")  # a system always has a hidden layer
        check_optimizer(optimizer, lr_scheduler)
        # Only plain values go into the checkpoint (it must load with weights_only=True); the optimizer
        # and scheduler are recorded in the run's config.yaml instead.
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.network = build_network(network, input_shape, num_outputs, hidden_sizes, activation, dropout,
                                     batch_norm, channels, negative_slope)
        if channels_last:
            self.network.to(memory_format=torch.channels_last)  # changes only 4-D tensors: conv weights
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.example_input_array = torch.zeros(2, *input_shape)
        self.losses = nn.ModuleDict({stage: MeanMetric() for stage in ("fit", "validate", "test")})
        metrics = self.make_metrics(num_outputs)
        self.metrics = nn.ModuleDict({stage: metrics.clone() for stage in ("fit", "validate", "test")})

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
        x, y = batch
        outputs = self.network(x)
        loss = self.loss(outputs, y)
        # ModuleDict keys can't be "train" (an nn.Module method), hence the trainer-stage names.
        key = {"train": "fit", "val": "validate", "test": "test"}[stage]
        # Metric objects are logged, so Lightning computes them over the whole epoch and syncs them
        # across DDP ranks: the epoch's loss is the sample-weighted mean over the full split.
        self.losses[key].update(loss.detach(), weight=len(y))
        self.metrics[key].update(outputs.detach(), y)
        self.log(f"{stage}/loss", self.losses[key], on_step=False, on_epoch=True, prog_bar=True)
        for name, metric in self.metrics[key].items():
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=name == "acc")
        return loss

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
                new = make_activation(kind, self.hparams.negative_slope if slope is None else slope)
                setattr(self.get_submodule(parent), child, new.train(module.training))
