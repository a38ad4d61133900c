from functools import partial

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from dlbasics.data import MoonsDataModule
from dlbasics.models import Classifier


def fit(tmp_path, max_epochs, ckpt_path=None, checkpoint=None):
    L.seed_everything(0)
    model = Classifier(hidden_sizes=[16, 16], optimizer=partial(torch.optim.Adam, lr=0.01))
    callbacks = [checkpoint] if checkpoint else []
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=bool(checkpoint), callbacks=callbacks,
                        default_root_dir=tmp_path)
    trainer.fit(model, MoonsDataModule(n_samples=400, batch_size=32, seed=1), ckpt_path=ckpt_path)
    return model


def test_resumed_run_sees_the_same_batches_and_ends_with_the_same_weights(tmp_path):
    every_epoch = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_top_k=-1, every_n_epochs=1)
    full = fit(tmp_path, 4, checkpoint=every_epoch)
    epoch2 = next((tmp_path / "ckpt").glob("epoch=1-*.ckpt"))  # saved at the end of the 2nd epoch
    resumed = fit(tmp_path, 4, ckpt_path=epoch2)
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
