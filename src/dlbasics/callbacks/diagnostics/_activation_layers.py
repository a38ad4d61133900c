"""Find the registry activations inside any model, for the callbacks that swap or watch them, and what a unit is."""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _NormBase  # BatchNorm*, SyncBatchNorm, InstanceNorm*, their Lazy forms
from torch.nn.modules.conv import _ConvNd  # Conv*d, ConvTranspose*d, their Lazy forms

from dlbasics.activations import ACTIVATIONS, activation_name
from dlbasics.callbacks.diagnostics._names import display_name, shortlist

# Layers whose output keeps its units on dim 1, (B, C, ...), and those that keep them last, (B, ..., F).
CHANNEL_LAYERS = (_ConvNd, _NormBase, nn.GroupNorm)
FEATURE_LAYERS = (nn.Linear, nn.Bilinear, nn.LayerNorm, nn.Embedding, nn.MultiheadAttention,
                  *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()))  # fmt: skip


def find_activations(model: nn.Module, remove_duplicate: bool = True) -> list[tuple[str, nn.Module, str]]:
    """``(qualified name, module, registry name)`` of every registry activation below ``model``.

    Found through ``named_modules()`` only, so this works for any model. The root itself is never listed
    (it has no parent to be replaced in). The names are the real ones (``net._orig_mod.1`` inside a compiled
    module), which reach the module; ``display_name`` gives the one to show.

    Args:
        model: the module to search, usually the LightningModule.
        remove_duplicate: list an instance used in several places once (True), or once per place (False).
    """
    found = []
    for name, module in model.named_modules(remove_duplicate=remove_duplicate):
        kind = activation_name(module)
        if name and kind is not None:
            found.append((name, module, kind))
    return found


def describe_activations(kinds: dict[str, str], most: int = 12) -> str:
    """``"net.layers.1: tanh, net.layers.3: tanh"`` from ``{name: registry name}``, cut after ``most`` entries."""
    return shortlist([f"{display_name(name)}: {kind}" for name, kind in kinds.items()], most)


def functional_activations(model: nn.Module) -> list[str]:
    """``"net.layers.0.activation: gelu"`` for each module attribute holding an activation *function*.

    ``nn.TransformerEncoderLayer(activation="gelu")`` keeps ``F.gelu`` there; such functions, like ``torch.relu``
    called in ``forward``, run no module, so no hook sees them and no swap can replace them.
    """
    found = []
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if not isinstance(value, nn.Module) and callable(value) and getattr(value, "__name__", "") in ACTIVATIONS:
                found.append(f"{display_name(f'{name}.{attr}' if name else attr)}: {value.__name__}")
    return found


def functional_hint(model: nn.Module) -> str:
    """The sentence a refusal adds when a model's activations are functions, which no callback can hook or swap."""
    seen = functional_activations(model)
    where = f" ({shortlist(seen)} in {type(model).__name__})" if seen else ""
    return (f"Functional activations{where}, such as torch.relu(x) or F.gelu(x) called in forward or "
            "nn.TransformerEncoderLayer(activation='gelu'), are not modules, so they cannot be hooked or swapped: "
            "build the model with activation modules instead (self.act = nn.ReLU() called in forward, "
            "activation=nn.GELU()).")


def preceding_unit_dims(model: nn.Module, names: list[str]) -> dict[str, int | None]:
    """For each activation ``name``, the dim its units are on, from the nearest layer registered before it.

    ``named_modules()`` lists a model's layers in the order they were registered, which in nearly every model
    (``nn.Sequential``, torchvision's ResNets, ConvNeXt, nn.TransformerEncoderLayer) is the order data flows: the
    layer just before an activation is the one it follows. After a conv or batch/instance/group norm: 1, the
    channels of ``(B, C, ...)``; after a linear layer, layer norm, embedding or attention: -1, the features of
    ``(B, ..., F)``; None when no such layer comes before it (the callback then decides by the output's shape).
    """
    wanted, dims, last = set(names), {}, None
    for name, module in model.named_modules():
        if isinstance(module, CHANNEL_LAYERS):
            last = 1
        elif isinstance(module, FEATURE_LAYERS):
            last = -1
        elif name in wanted:
            dims[name] = last
    return dims
