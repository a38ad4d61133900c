from functools import partial
from types import SimpleNamespace

import pytest
import torch

from dlbasics.callbacks.figures._collector import Collector
from dlbasics.callbacks.figures.base import forward_eval, split_batch
from dlbasics.models import Classifier
from dlbasics.models.components import MLP


def test_collector_numbers_rows_as_in_the_whole_split_and_keeps_the_smallest_keys():
    rank1 = SimpleNamespace(world_size=2, global_rank=1)  # one rank of two: no process group, gathers its own rows
    collector = Collector(limit=3)
    collector.add(rank1, {"v": torch.tensor([5.0, 1.0, 4.0])}, key=torch.tensor([5.0, 1.0, 4.0]))
    two = torch.tensor([2.0, 3.0])
    collector.add(rank1, {"v": two}, mask=torch.tensor([True, False]), key=two)
    rows = collector.gather(rank1)
    assert rows["v"].tolist() == [1.0, 2.0, 4.0]
    assert rows["position"].tolist() == [3, 7, 5]  # local index i of rank 1 -> split index 2 i + 1
    assert collector.counts == {"seen": 5, "matched": 4}


def test_forward_eval_runs_in_eval_mode_without_gradients_and_restores_each_module():
    model = Classifier(network=partial(MLP, hidden_sizes=[8], dropout=0.5, batch_norm=True))
    model.network.layers[1].eval()  # a frozen batch norm inside a training model stays frozen
    before = {name: m.training for name, m in model.named_modules()}
    x = torch.randn(5, 2)
    out = forward_eval(model, x)
    assert {name: m.training for name, m in model.named_modules()} == before
    assert not out.requires_grad
    torch.testing.assert_close(out, model.eval()(x).detach())  # eval: no dropout, running batch-norm statistics


def test_batches_must_be_input_target_tuples():
    x, y = torch.zeros(2, 3), torch.zeros(2)
    assert split_batch([x, y, "extra"], "Test") == (x, y)
    with pytest.raises(TypeError, match=r"\(inputs, targets, ...\) whose first two items are tensors, got a dict"):
        split_batch({"x": x}, "Test")
