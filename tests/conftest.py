import lightning as L
import pytest


def quiet_trainer(tmp_path, **kwargs) -> L.Trainer:
    """A CPU trainer with no progress bar, summary or logger unless asked, writing under tmp_path."""
    options = dict(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    options.update(kwargs)
    return L.Trainer(**options)


@pytest.fixture
def make_trainer(tmp_path):
    return lambda **kwargs: quiet_trainer(tmp_path, **kwargs)
