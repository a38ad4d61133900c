import pytest
import torch

from dlbasics.data.batching import ShardedBatches, TensorLoader


def epoch_indices(sampler: ShardedBatches, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return torch.cat([torch.arange(len(range(*b.indices(sampler.num_samples)))) + b.start
                      if isinstance(b, slice) else b for b in sampler]).tolist()


def test_unshuffled_single_process_yields_contiguous_slices():
    sampler = ShardedBatches(10, 4, shuffle=False)
    assert list(sampler) == [slice(0, 4), slice(4, 8), slice(8, 10)]
    assert len(sampler) == 3


def test_shuffled_order_depends_only_on_seed_and_epoch():
    a, b = ShardedBatches(50, 8, True, seed=3), ShardedBatches(50, 8, True, seed=3)
    assert epoch_indices(a, 2) == epoch_indices(b, 2)  # a fresh sampler (a resumed run) sees the same order
    assert epoch_indices(a, 2) != epoch_indices(a, 3)
    assert epoch_indices(a, 2) != epoch_indices(ShardedBatches(50, 8, True, seed=4), 2)
    assert sorted(epoch_indices(a, 5)) == list(range(50))


@pytest.mark.parametrize("shuffle", [False, True])
def test_eval_shards_are_disjoint_and_cover_the_split(shuffle):
    shards = [epoch_indices(ShardedBatches(11, 3, shuffle, rank=r, world_size=3), 1) for r in range(3)]
    flat = [i for shard in shards for i in shard]
    assert sorted(flat) == list(range(11))


def test_training_shards_have_equal_length_and_cover_the_split():
    samplers = [ShardedBatches(11, 2, True, seed=1, rank=r, world_size=3, pad=True) for r in range(3)]
    shards = [epoch_indices(s, 0) for s in samplers]
    assert {len(s) for s in shards} == {4}
    assert {len(s) for s in samplers} == {2}  # same number of steps on every rank
    assert set(i for s in shards for i in s) == set(range(11))


def test_loader_slices_all_tensors_alike():
    x, y = torch.arange(10.0).unsqueeze(1), torch.arange(10)
    loader = TensorLoader((x, y), ShardedBatches(10, 3, shuffle=True, seed=0))
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    for bx, by in batches:
        assert torch.equal(bx.squeeze(1).long(), by)
    assert sorted(torch.cat([b[1] for b in batches]).tolist()) == list(range(10))


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size 0 must be an integer >= 1"):
        ShardedBatches(10, 0, False)
    with pytest.raises(ValueError, match=r"rank 2 must be an integer in \[0, 2\)"):
        ShardedBatches(10, 2, False, rank=2, world_size=2)
    with pytest.raises(ValueError, match="same length"):
        TensorLoader((torch.zeros(3), torch.zeros(4)), ShardedBatches(3, 1, False))
