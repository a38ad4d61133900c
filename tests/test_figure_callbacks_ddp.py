"""The figure callbacks on two CPU processes: every test sample counts once, though each rank sees its own shard."""

import os
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import lightning as L
import pytest
import torch
from reliability_probes import child_environment
from test_figure_callbacks import highest_loss, pngs, run_folder
from torch.nn import functional as F

from dlbasics.callbacks import ConfusionMatrix, DecisionBoundary, Misclassified
from dlbasics.data import MoonsDataModule
from dlbasics.models import Classifier
from dlbasics.models.components import MLP


class WriteResultsPerRank(L.Callback):
    """Saves what the figure callbacks computed on each DDP rank (ddp_spawn returns nothing of the children's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_test_end(self, trainer, pl_module):
        found = {(type(cb).__name__, getattr(cb, "order", None)): cb for cb in trainer.callbacks}
        worst, first = found["Misclassified", "highest_loss"].picks, found["Misclassified", "first"].picks
        report = {"matrix": found["ConfusionMatrix", None].matrix.tolist(),
                  "worst": worst["wrong"]["position"].tolist(), "worst_right": worst["right"]["position"].tolist(),
                  "worst_x": worst["wrong"]["x"].tolist(), "first": first["wrong"]["position"].tolist(),
                  "boundary": found["DecisionBoundary", None].history}
        torch.save(report, self.folder / f"rank{trainer.global_rank}.pt")


def ddp_setup() -> tuple[MoonsDataModule, Classifier]:
    """51 test points, so the two evaluation shards differ in size (26 and 25); a seeded tanh classifier."""
    torch.manual_seed(0)
    network = partial(MLP, hidden_sizes=[16], activation="tanh")
    return MoonsDataModule(n_samples=204, eval_batch_size=8), Classifier(network=network)


def run_on_two_processes(folder: str) -> None:
    """Test ``ddp_setup``'s model with the figure callbacks on two CPU processes (run in a subprocess)."""
    dm, model = ddp_setup()
    callbacks = [ConfusionMatrix(), Misclassified(n_wrong=5, n_right=3, order="highest_loss"), Misclassified(n_wrong=4),
                 DecisionBoundary(stage="test", resolution=10), WriteResultsPerRank(Path(folder))]
    L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=run_folder(Path(folder))[0],
              callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False).test(model, dm)


@pytest.mark.slow
def test_every_sample_counts_once_under_ddp_with_uneven_shards(tmp_path):
    # In a subprocess with a time limit: a stalled collective must fail the test, not hang the suite.
    code = f"from test_figure_callbacks_ddp import run_on_two_processes; run_on_two_processes({str(tmp_path)!r})"
    process = subprocess.Popen([sys.executable, "-c", code], env=child_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the DDP workers too
        pytest.fail(f"the two-process test run did not finish in 90 s:\n{process.communicate()[0][-3000:]}")
    assert process.returncode == 0, output[-3000:]
    dm, model = ddp_setup()
    x, y = dm.split("test")
    assert len(y) == 51
    with torch.no_grad():
        logits = model(x)
    pred, loss = logits.argmax(1), F.cross_entropy(logits, y, reduction="none")
    expected = torch.zeros(2, 2, dtype=torch.int64).index_put_((y, pred), torch.tensor(1), accumulate=True)
    wrong, right = (pred != y).nonzero()[:, 0], (pred == y).nonzero()[:, 0]
    for rank in (0, 1):  # every rank ends with the same, complete result
        report = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert report["matrix"] == expected.tolist()
        assert report["worst"] == highest_loss(loss, wrong, 5).tolist()
        assert report["worst_right"] == highest_loss(loss, right, 3).tolist()
        assert report["first"] == wrong[:4].tolist()  # the split's order, though each rank saw every other sample
        torch.testing.assert_close(torch.tensor(report["worst_x"]), x[report["worst"]])
        assert report["boundary"][0]["n_points"] == 51
        assert report["boundary"][0]["accuracy"] == pytest.approx(float((pred == y).float().mean()))
    assert pngs(run_folder(tmp_path)[1]) == {"confusion_matrix_test.png", "misclassified_test_highest_loss.png",
                                             "misclassified_test.png", "decision_boundary_test.png"}  # by rank zero
