"""TensorBoard histograms of each layer's weights and of its gradients, every few epochs, for any LightningModule."""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import Tensor

from dlbasics.callbacks._logged_steps import epoch_step
from dlbasics.callbacks.diagnostics._gradient_layers import ForwardOrder, Watched, choose_parameters
from dlbasics.callbacks.diagnostics._gradients import stored_values
from dlbasics.callbacks.diagnostics._names import layer_labels, module_kind, shortlist
from dlbasics.checks import check_int, check_pattern


class WeightHistograms(Callback):
    """Log TensorBoard histograms ``weights/<layer>`` and ``gradients/<layer>`` every ``every_n_epochs`` epochs.

    Works with any LightningModule: the layers are its trainable weights found through ``named_modules()``, chosen
    and named as ``GradientFlowMonitor`` chooses and names them (``linear7 (network.layers.12)``: numbered per kind
    in forward order, ``_names.layer_labels``). Logged epochs: the first and every ``every_n_epochs``-th (epoch
    index + 1 a multiple of it). For a logged epoch, its last optimizer step's weights and gradients, as that
    step's forward and backward saw them (copied in ``on_before_optimizer_step``: before the update, DDP-averaged,
    AMP-unscaled, before clipping), at the step Lightning logs the epoch's ``train/`` metrics at, so
    ``weights/...`` and ``train/loss`` at one step belong together. With ``log_initial`` also the weights before
    the first step, at step 0 (in full-batch training the first epoch's weights are those: logged once). Size is
    bounded: at most ``max_layers`` layers (spread evenly in the order ``named_modules()`` lists them, first and
    last kept) and ``bins`` bins per histogram.

    Histograms need a TensorBoard ``SummaryWriter``: the ``experiment`` of each logger that has one (Lightning's
    ``TensorBoardLogger``), or, with ``subfolder``, one of its own in ``<first such logger's log_dir>/<subfolder>``
    (another TensorBoard run). Without any it warns once and logs nothing. Refused before the run
    (``check_before_run``): a ``module`` that is not a submodule, a ``pattern`` that selects no parameter.

    Args:
        every_n_epochs: log the first epoch and every this many epochs.
        gradients: also log the gradients.
        log_initial: also log the weights before training starts (step 0): what the initialization drew.
        include_bias: watch the biases too (as ``<layer> (<module>.bias)``).
        pattern: regular expression searched in the parameter names (e.g. ``"encoder"``); None keeps all.
        max_layers: log at most this many layers; a model with more gets this many, evenly spread.
        bins: bins of each histogram, of equal widths between the values' minimum and maximum (plus an empty one
            ending at the minimum, as ``SummaryWriter.add_histogram`` writes them).
        module: name in ``named_modules()`` of the submodule to watch (``"members.0"``), None: the whole module;
            layers are named relative to it.
        subfolder: write into this folder under the TensorBoard logger's ``log_dir`` with a writer of its own
            (``"seed_3"``: a TensorBoard run of its own); None: into the loggers' event files.
    """

    def __init__(
        self,
        every_n_epochs: int = 1,
        gradients: bool = True,
        log_initial: bool = True,
        include_bias: bool = False,
        pattern: str | None = None,
        max_layers: int = 16,
        bins: int = 64,
        module: str | None = None,
        subfolder: str | None = None,
    ) -> None:
        self.every_n_epochs = check_int(every_n_epochs, "every_n_epochs")
        self.max_layers = check_int(max_layers, "max_layers")
        self.bins = check_int(bins, "bins", minimum=2)
        self._regex = None if pattern is None else check_pattern(pattern)
        if subfolder is not None and (not subfolder or PurePath(subfolder).is_absolute()
                                      or ".." in PurePath(subfolder).parts):
            raise ValueError(f"subfolder {subfolder!r} must be a relative folder name inside the run's log_dir, "
                             "such as 'seed_3'")
        self.gradients, self.log_initial, self.include_bias = gradients, log_initial, include_bias
        self.pattern, self.module, self.subfolder = pattern, module, subfolder
        self.layers: list[str] = []  # the logged layers' parameter tags (``network.layers.0``), once fit started
        self.labels: dict[str, str] = {}  # tag -> its name in TensorBoard (``linear1 (network.layers.0)``)
        self._watched: list[Watched] = []
        self._all: list[Watched] = []  # every chosen weight, before the max_layers cut: what the labels number
        self._kinds: dict[str, str] = {}
        self._forward: ForwardOrder | None = None
        self._writers: list[Any] = []
        self._own_writer: Any = None
        self._initial: list[Tensor] = []  # the weights before the first step, written once the labels are known
        self._captured: tuple[list[Tensor], list[Tensor | None]] | None = None  # the last step's weights, grads
        self._written: dict[str, int] = {}  # group -> last step written: never two histograms of a tag at a step

    def check_before_run(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Refuse, before the run folder exists, a ``module`` or ``pattern`` that selects nothing of ``pl_module``."""
        self._choose(pl_module)

    def _choose(self, pl_module: LightningModule) -> list[Watched]:
        """Every watched weight (before the ``max_layers`` cut); a ValueError saying what exists if none."""
        modules = dict(pl_module.named_modules())
        if self.module is not None and self.module not in modules:
            raise ValueError(f"WeightHistograms module {self.module!r} is not a submodule of the "
                             f"{type(pl_module).__name__}; its submodules are: {shortlist([n for n in modules if n])}")
        roles = ("weight", "bias") if self.include_bias else ("weight",)
        chosen, available = choose_parameters(modules[self.module or ""], roles, self._regex)
        if not chosen:
            raise ValueError(f"WeightHistograms found no trainable {' or '.join(roles)} parameter matching pattern "
                             f"{self.pattern!r}; the trainable parameters are: {shortlist(available)}. Change "
                             "`pattern` (a regex searched in these names) or `module`, or set `include_bias`.")
        return chosen

    def _bounded(self, chosen: list[Watched]) -> list[Watched]:
        """At most ``max_layers`` of ``chosen``, evenly spread, first and last kept (says so when it cuts)."""
        if len(chosen) <= self.max_layers:
            return chosen
        kept = np.unique(np.linspace(0, len(chosen) - 1, self.max_layers).round().astype(int))
        rank_zero_info(f"WeightHistograms: {len(chosen)} layers, logging {len(kept)} of them (max_layers="
                       f"{self.max_layers}): {shortlist([chosen[i].tag for i in kept])}")
        return [chosen[i] for i in kept]

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._all = self._choose(pl_module)
        self._watched = self._bounded(self._all)
        self.layers = [w.tag for w in self._watched]
        root = pl_module.get_submodule(self.module or "")
        modules = dict(root.named_modules())
        self._kinds = {w.tag: module_kind(modules[w.owner]) for w in self._all}
        self.labels = self._label(list(range(len(self._all))))  # registration order until a batch has run
        self._remove_hooks()
        self._forward = ForwardOrder(root, [w.owner for w in self._all])
        self._writers = self._find_writers(trainer) if trainer.is_global_zero else []
        self._initial, self._captured, self._written = [], None, {}

    def _label(self, order: list[int]) -> dict[str, str]:
        tags = [self._all[i].tag for i in order]
        return layer_labels(tags, [self._kinds[tag] for tag in tags])

    def _find_writers(self, trainer: Trainer) -> list[Any]:
        """The ``SummaryWriter``s to write to; warns and returns none if no logger has one."""
        found = [(lg, lg.experiment) for lg in trainer.loggers
                 if callable(getattr(lg.experiment, "_get_file_writer", None))]  # torch's or tensorboardX's
        if not found:
            kinds = ", ".join(type(lg).__name__ for lg in trainer.loggers) or "no logger"
            rank_zero_warn(f"WeightHistograms needs a logger with a TensorBoard SummaryWriter (Trainer(logger="
                           f"TensorBoardLogger(...))); this run has {kinds}: no histograms will be written.")
            return []
        if self.subfolder is None:
            return [writer for _, writer in found]
        from torch.utils.tensorboard import SummaryWriter

        self._own_writer = SummaryWriter(str(Path(found[0][0].log_dir) / self.subfolder))
        return [self._own_writer]

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.log_initial and self._writers and trainer.global_step == 0:  # not a resumed run: initial weights
            self._initial = [w.param.detach().clone() for w in self._watched]

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Any) -> None:
        if self._writers and self._logs(trainer.current_epoch):
            # Copies: the step updates the weights in place, and zero_grad(set_to_none=False) zeroes the gradients.
            grads = [None if not self.gradients or w.param.grad is None else stored_values(w.param.grad).clone()
                     for w in self._watched]
            self._captured = ([w.param.detach().clone() for w in self._watched], grads)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if self._forward is not None and self._forward.active:  # the first batch has run: number in forward order
            self.labels = self._label(self._forward.order())
        if self._initial:
            self._write("weights", self._initial, 0)
            self._initial = []

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._captured is None or not self._logs(trainer.current_epoch):
            return
        step = epoch_step(trainer)  # where Lightning logs this epoch's train/ metrics
        weights, grads = self._captured
        self._write("weights", weights, step)
        self._write("gradients", grads, step)
        self._captured = None

    def _logs(self, epoch: int) -> bool:
        return epoch == 0 or (epoch + 1) % self.every_n_epochs == 0

    def _write(self, group: str, tensors: list[Tensor] | list[Tensor | None], step: int) -> None:
        """One histogram per layer that has a tensor, all copied to the host at once."""
        pairs = [(self.labels[w.tag], t) for w, t in zip(self._watched, tensors) if t is not None]
        if not self._writers or not pairs or self._written.get(group) == step:
            return
        # float32 on the device (MPS has no float64), float64 for numpy's sums once on the host: the one host sync
        flat = torch.cat([t.flatten().float() for _, t in pairs]).cpu().numpy().astype(np.float64)
        values = np.split(flat, np.cumsum([t.numel() for _, t in pairs])[:-1])
        summary = histograms_summary({f"{group}/{label}": v for (label, _), v in zip(pairs, values)}, self.bins)
        for writer in self._writers:
            writer._get_file_writer().add_summary(summary, step)  # as Lightning's TensorBoardLogger writes hparams
        self._written[group] = step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._close()

    def _remove_hooks(self) -> None:
        if self._forward is not None:
            self._forward.remove()
        self._forward = None

    def _close(self) -> None:
        self._remove_hooks()
        if self._own_writer is not None:
            self._own_writer.close()
        self._own_writer, self._writers, self._initial, self._captured = None, [], [], None


def histograms_summary(values: dict[str, np.ndarray], bins: int) -> Any:
    """One TensorBoard ``Summary`` holding a histogram per tag (one event per step and group, not one per layer: a
    fifth of the cost of ``SummaryWriter.add_histogram`` per layer). As ``add_histogram(bins=bins)`` writes them:
    ``bins`` equal-width buckets between min and max, after an empty one ending at the minimum (TensorBoard reads
    each bucket as ending at its limit, starting at the previous one's)."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

    out = []
    for tag, array in values.items():
        counts, edges = np.histogram(array, bins=bins)
        histogram = HistogramProto(min=float(array.min()), max=float(array.max()), num=float(array.size),
                                   sum=float(array.sum()), sum_squares=float(np.dot(array, array)),
                                   bucket_limit=edges.tolist(), bucket=[0.0, *counts.tolist()])
        out.append(Summary.Value(tag=tag, histo=histogram))
    return Summary(value=out)
