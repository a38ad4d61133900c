import os
from collections.abc import Iterator
from contextlib import contextmanager

import lightning as L
import pytest


@contextmanager
def saved_environment() -> Iterator[None]:
    """Put ``os.environ`` back as it was on entry, whatever the block wrote or removed."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def restore_environment():
    """Give every test the process environment it started with back when it ends.

    Lightning's DDP launcher writes ``LOCAL_RANK``, ``NODE_RANK``, ``MASTER_PORT``, ... into ``os.environ`` of the
    process that runs a ``ddp`` fit, and ``seed_everything`` writes ``PL_GLOBAL_SEED``. Left behind by an in-process
    test, ``LOCAL_RANK`` makes a later two-process ``dlbasics`` run believe its ranks were started externally: rank 0
    then waits for a rank 1 that nobody starts (CI hung this way).
    """
    with saved_environment():
        yield


def quiet_trainer(tmp_path, **kwargs) -> L.Trainer:
    """A CPU trainer with no progress bar, summary or logger unless asked, writing under tmp_path."""
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    options.update(kwargs)
    return L.Trainer(**options)


@pytest.fixture
def make_trainer(tmp_path):
    return lambda **kwargs: quiet_trainer(tmp_path, **kwargs)


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A small MNIST-format data_dir (6000 train, 1000 test random digits) that passes the checksum check."""
    import hashlib

    import torch

    from dlbasics.data import mnist_files

    raw = mnist_files.raw_dir(tmp_path / "mnist_data")
    raw.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 6000), ("t10k", 1000)):
        mnist_files.write_idx(raw / f"{prefix}-images-idx3-ubyte",
                              torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=generator))
        mnist_files.write_idx(raw / f"{prefix}-labels-idx1-ubyte",
                              (torch.arange(n) % 10).to(torch.uint8))
    table = {p.name: (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_size) for p in raw.iterdir()}
    monkeypatch.setattr(mnist_files, "RAW_FILES", table)
    return tmp_path / "mnist_data"
