"""Which parameters GradientFlowMonitor watches, what it calls them, and the order their layers run in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from dlbasics.callbacks.diagnostics._names import display_name


def parameter_role(name: str) -> str:
    """``"weight"``, ``"bias"`` or ``"other"`` for a parameter's qualified name, read from its own (last) name.

    Weights: ``weight`` and every name with ``weight`` as a ``_``-separated word (attention's ``in_proj_weight``,
    ``q_proj_weight``, pruning's ``weight_orig``, ``weight_norm``'s ``weight_g``/``weight_v``); biases likewise
    (``bias``, ``in_proj_bias``, ``bias_k``, ``bias_v``); a parametrized ``parametrizations.weight.original`` is
    its ``weight``. Anything else (a ViT's ``class_token``, ``pos_embedding``) is ``other``.
    """
    parts = name.split(".")
    own = parts[-2] if len(parts) >= 3 and parts[-3] == "parametrizations" else parts[-1]
    words = own.split("_")
    return "weight" if "weight" in words else "bias" if "bias" in words else "other"


def layer_tag(name: str) -> str:
    """The name a parameter is shown under: ``net.0`` for ``net.0.weight``, others as named, without ``_orig_mod``."""
    name = display_name(name)
    prefix, marker, rest = name.partition(".parametrizations.")
    if marker:  # net.0.parametrizations.weight.original -> net.0.weight
        name = f"{prefix}.{rest.split('.')[0]}"
    return name.removesuffix(".weight")


@dataclass
class Watched:
    """One watched parameter: its qualified name, tag, the parameter, and the name of the module holding it."""

    name: str
    tag: str
    param: nn.Parameter
    owner: str


def choose_parameters(model: nn.Module, roles: tuple[str, ...], regex: re.Pattern[str] | None,
                      ) -> tuple[list[Watched], list[str]]:
    """The trainable parameters of ``roles`` whose shown name ``regex`` finds, and the names of all trainable ones."""
    chosen, available = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(prefix=module_name, recurse=False):
            if not param.requires_grad or param.numel() == 0:
                continue
            available.append(display_name(name))
            if parameter_role(name) in roles and (regex is None or regex.search(display_name(name))):
                chosen.append(Watched(name, layer_tag(name), param, module_name))
    return chosen, available


class ForwardOrder:
    """The order layers first run in, from forward pre-hooks on the modules holding the parameters and their parents.

    A parameter is placed at the first call of its module, or, if that module is never called (attention runs
    its ``out_proj`` weight through ``F.multi_head_attention_forward`` without calling ``out_proj``), at the first
    call of the nearest parent that is (the root excepted); ties keep the registration order. Parameters of
    modules of which nothing ran come last.
    """

    def __init__(self, model: nn.Module, owners: list[str]) -> None:
        self._chains = [self._chain(owner) for owner in owners]
        modules = dict(model.named_modules())
        self._first_call: dict[str, int] = {}
        self._hooks = [modules[name].register_forward_pre_hook(partial(self._record, name))
                       for name in dict.fromkeys(n for chain in self._chains for n in chain) if name in modules]

    @staticmethod
    def _chain(name: str) -> list[str]:
        """``a.b.c`` -> ``[a.b.c, a.b, a]``: the module and its parents, not the root (that runs everything first)."""
        parts = name.split(".") if name else []
        return [".".join(parts[:i]) for i in range(len(parts), 0, -1)] or [""]

    def _record(self, name: str, *_: Any) -> None:
        self._first_call.setdefault(name, len(self._first_call))

    @property
    def active(self) -> bool:
        return bool(self._hooks)

    def order(self) -> list[int]:
        """Indices of the owners given to ``__init__`` in forward order; removes the hooks."""
        self.remove()
        last = len(self._first_call)
        ranks = [next((self._first_call[n] for n in chain if n in self._first_call), last) for chain in self._chains]
        return sorted(range(len(ranks)), key=lambda i: (ranks[i], i))

    def remove(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


def weight_norms(params: list[nn.Parameter]) -> list[torch.Tensor]:
    """||w|| of each parameter as a float32 0-d tensor on its device (no host sync)."""
    return [torch.linalg.vector_norm(p.detach(), 2, dtype=torch.float32) for p in params]
