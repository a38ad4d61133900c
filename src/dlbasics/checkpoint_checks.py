"""Refuse a ``--ckpt_path`` that is no checkpoint, or one of another model, before anything is written.

Lightning would load a text file with torch's warning about arbitrary code execution, a truncated file with a bare
``OSError``, a checkpoint of another network with a size-mismatch traceback, and a checkpoint of another config
whose shapes happen to fit silently. Each gets one message here that names the file and, for a mismatch, both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` (weights only), or a ValueError saying why it can't be one."""
    if not Path(path).is_file():
        raise ValueError(f"--ckpt_path {path}: no such file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 (pickle, zip and OS errors alike mean the same to a user)
        raise ValueError(f"--ckpt_path {path} is not a checkpoint (or is truncated): torch.load failed with "
                         f"{type(err).__name__}") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"--ckpt_path {path} is not a Lightning checkpoint: it holds no state_dict")
    return checkpoint


def check_network_settings(path: str | Path, checkpoint: dict[str, Any], network: dict[str, Any] | None) -> None:
    """Raise a ValueError if ``checkpoint`` (loaded from ``path``) was trained with other network settings than
    ``network`` (``{"class_path", "init_args"}`` as the config gives it). Lightning would otherwise load the
    checkpoint's settings over the config's without a word."""
    saved = checkpoint.get("hyper_parameters", {}).get("network")
    if not isinstance(saved, dict) or not isinstance(network, dict):
        return
    (saved_class, saved_args), (my_class, my_args) = _comparable(saved), _comparable(network)
    differ = {key for key in saved_args.keys() & my_args.keys() if _plain(saved_args[key]) != _plain(my_args[key])}
    if saved_class != my_class or differ:
        shown = differ or saved_args.keys()
        raise ValueError(f"--ckpt_path {path} was trained with network {_describe(saved_class, saved_args, shown)}, "
                         f"but the config builds {_describe(my_class, my_args, shown)}; use the config the checkpoint "
                         "was trained with (its run folder's config.yaml)")


def check_parameter_shapes(path: str | Path, checkpoint: dict[str, Any], model: LightningModule) -> None:
    """Raise a ValueError if the parameters and buffers of ``checkpoint`` (loaded from ``path``) don't have
    ``model``'s names and shapes."""
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in checkpoint["state_dict"].items() if isinstance(t, torch.Tensor)}
    differ = sorted(name for name in shapes.keys() & stored.keys() if shapes[name] != stored[name])
    missing, extra = sorted(shapes.keys() - stored.keys()), sorted(stored.keys() - shapes.keys())
    if differ or missing or extra:
        details = [f"{name}: checkpoint {stored[name]}, model {shapes[name]}" for name in differ[:3]]
        details += [f"missing from the checkpoint: {', '.join(missing[:3])}"] if missing else []
        details += [f"not in the model: {', '.join(extra[:3])}"] if extra else []
        raise ValueError(f"--ckpt_path {path} does not fit the config's model ({'; '.join(details)}); use the config "
                         "the checkpoint was trained with (its run folder's config.yaml)")


def _comparable(network: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The CLI writes the public path (dlbasics.models.components.MLP), Python the defining module's (...mlp.MLP).
    return network.get("class_path", "").rsplit(".", 1)[-1], dict(network.get("init_args") or {})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _describe(name: str, args: dict[str, Any], keys: Any) -> str:
    return f"{name}({', '.join(f'{k}={args[k]!r}' for k in sorted(keys) if k in args)})"
