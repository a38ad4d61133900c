"""No float64 tensor in any config's training loop: MPS has no float64, so one would fail only on a Mac.

Runs every config (scaled down) with every training and validation batch, the epoch-end metrics and logging, and
every callback's hooks under a ``TorchDispatchMode`` that records the dtype of each tensor an ATen op reads or makes.
"""

import pytest
import torch
from reliability_probes import CONFIGS, DtypeRecorder, RecordDtypes, scaled_config

from dlbasics.lightning_cli import cli_main


def test_the_recorder_sees_every_dtype():
    with DtypeRecorder() as recorder:
        torch.ones(2, dtype=torch.float64).sum()
    assert "aten.sum.default" in recorder.seen[torch.float64]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_training_and_validation_make_no_float64(config, tmp_path, fake_mnist):
    data = ["--data.init_args.data_dir", str(fake_mnist), "--data.init_args.val_size", "100",
            "--data.init_args.eval_batch_size", "50"] if "mnist" in config.name else []
    cli = cli_main(["fit", "--config", str(scaled_config(config, tmp_path)), "--trainer.limit_train_batches", "2",
                    "--trainer.limit_val_batches", "2", "--trainer.enable_model_summary", "false",
                    "--trainer.callbacks+=reliability_probes.RecordDtypes", *data])
    (record,) = [cb for cb in cli.trainer.callbacks if isinstance(cb, RecordDtypes)]
    assert record.batches == 2 * min(2, len(cli.trainer.datamodule.train_dataloader()))  # 2 epochs
    assert "aten.addmm.default" in record.recorder.seen[torch.float32]  # the network ran under the recorder
    assert torch.float64 not in record.recorder.seen, sorted(record.recorder.seen[torch.float64])
