"""Put a new module in an old one's place inside any model, so that everything that used the old one uses the new."""

from __future__ import annotations

from torch import nn

# nn.Module's hook registries. A replacement takes over the old module's (the same dict objects, so handles
# held elsewhere still remove their hooks), and hook-based tools such as ActivationStats keep watching the layer.
_HOOK_STATE = (
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs",
    "_forward_hooks_always_called", "_backward_pre_hooks", "_backward_hooks", "_is_full_backward_hook",
)  # fmt: skip

# nn.TransformerEncoderLayer's inference fast path (eval, no grad) never calls `activation`: it computes the one
# this flag, set at construction, names (1 relu, 2 gelu); 0 turns the fast path off, so `activation` is called.
_FAST_PATH_FLAG = "activation_relu_or_gelu"
_FAST_PATH_KINDS = {nn.ReLU: 1, nn.GELU: 2}


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Set ``new`` at the qualified ``name`` in ``model``, with the old module's hooks and training mode.

    A parent that chose at construction how to run the child it replaces is told: for an
    ``nn.TransformerEncoderLayer`` the fast-path flag follows the new activation (exact GELU, as the registry
    builds it, runs as 2).
    """
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    old = parent.get_submodule(child)
    new.train(old.training)
    for attr in _HOOK_STATE:
        if hasattr(old, attr):
            setattr(new, attr, getattr(old, attr))
    setattr(parent, child, new)
    if child == "activation" and hasattr(parent, _FAST_PATH_FLAG):
        setattr(parent, _FAST_PATH_FLAG, _FAST_PATH_KINDS.get(type(new), 0))
