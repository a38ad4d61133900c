"""Process-group housekeeping for DDP on CPU (gloo), in the processes that run a fit and in ``ddp_spawn``'s workers.

Lightning destroys only NCCL process groups at exit. A gloo group left to interpreter finalization can abort a
process whose run succeeded ("terminate called without an active exception", exit status -6): its worker threads
still hold tensors when Python is torn down (pytorch/pytorch#179291). Under ``ddp_spawn`` the groups live in
worker processes that run no dlbasics command, so ``import dlbasics`` registers ``release_process_group`` with
``atexit``: every process that unpickles a dlbasics model, datamodule or callback releases its group while the
interpreter is still whole.
"""

from __future__ import annotations

import atexit
import sys

__all__ = ["release_process_group"]


def release_process_group() -> None:
    """Destroy the default process group if this process still holds one; a no-op otherwise (and without torch)."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()


atexit.register(release_process_group)
