"""How the diagnostics name layers and parameters to the user: without torch.compile's wrapper, in short lists."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from torch import nn

# ``torch.compile(module)`` returns an ``OptimizedModule`` holding the original as its child ``_orig_mod``.
_COMPILE_WRAPPER = "_orig_mod"


def display_name(name: str) -> str:
    """``name`` without the ``_orig_mod`` parts a ``torch.compile``d submodule adds: ``net._orig_mod.0`` -> ``net.0``.

    The callbacks report, log and match their ``pattern`` settings against these names, so a layer is named the
    same whether or not its module was compiled; they keep the real names to reach the modules.
    """
    if _COMPILE_WRAPPER not in name:
        return name
    return ".".join(part for part in name.split(".") if part != _COMPILE_WRAPPER)


def shortlist(items: Sequence[str], most: int = 8) -> str:
    """``"a, b, c"``, cut after ``most`` entries with the total: ``"a, b, ... (9 in all)"``; ``"none"`` if empty."""
    if not items:
        return "none"
    shown = ", ".join(items[:most])
    return shown if len(items) <= most else f"{shown}, ... ({len(items)} in all)"


def layer_labels(names: Sequence[str], kinds: Sequence[str]) -> dict[str, str]:
    """Names a learner reads, for layers given in forward order with their kinds: ``linear1 (net.0)``, ...

    The k-th layer of a kind is ``<kind><k>``, so the 7th linear layer of a deep MLP is ``linear7
    (network.layers.12)`` whatever its module is called: derived from the model, so a model nobody here wrote gets
    its own names. Numbers have leading zeros when a kind has 10 layers or more (TensorBoard sorts tags as text).
    A bias (``net.0.bias``) takes its layer's number; the layers of each ``members.<k>`` copy (a seed ensemble's
    members) are numbered on their own. Used in TensorBoard tags and figure labels; ``history`` and
    ``series`` keep the module names.
    """
    if len(names) != len(kinds):
        raise ValueError(f"layer_labels needs one kind per name, got {len(names)} names and {len(kinds)} kinds")
    kind_of = dict(zip((name.removesuffix(".bias") for name in names), kinds))
    # A model of copies (dlbasics' SeedEnsemble keeps one per seed in members.<k>) numbers each copy on its own.
    group_kind = [(_copy_of(layer), kind) for layer, kind in kind_of.items()]
    counts = Counter(group_kind)
    seen: Counter[tuple[str, str]] = Counter()
    number = {}
    for layer, key in zip(kind_of, group_kind):
        seen[key] += 1
        number[layer] = f"{key[1]}{seen[key]:0{2 if counts[key] >= 10 else 1}d}"
    return {name: f"{number[name.removesuffix('.bias')]} ({name})" for name in names}


def _copy_of(name: str) -> str:
    """``members.3`` for ``members.3.network.layers.0``, the copy of an ensemble a layer belongs to; else ``""``."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[0] == "members" and parts[1].isdigit() else ""


def module_kind(module: nn.Module) -> str:
    """A layer's kind for ``layer_labels``: its class name in lower case, ``linear`` for every ``nn.Linear``
    (attention's ``out_proj`` is a subclass), ``conv2d``, ``batchnorm1d``, ``multiheadattention``, ..."""
    return "linear" if isinstance(module, nn.Linear) else type(module).__name__.lower()
