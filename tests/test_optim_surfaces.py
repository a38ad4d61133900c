"""dlbasics.optim_surfaces: torch optimizers on 2-D surfaces, every (start, learning rate) pair in one optimizer."""

import math

import numpy as np
import pytest
import torch

from dlbasics.optim_surfaces import OPTIMIZERS, QUADRATIC, ROSENBROCK, Paths, starts_for, trajectories


def test_sgd_on_the_quadratic_follows_the_closed_form():
    """Gradient (x, 100 y): one SGD step multiplies x by (1 - lr) and y by (1 - 100 lr)."""
    lr, steps = 0.01, 50
    paths = trajectories(QUADRATIC, "SGD", [lr], torch.tensor([[-4.0, 0.5]], dtype=torch.float64), steps)
    t = np.arange(steps + 1)
    np.testing.assert_allclose(paths.points[0, 0, :, 0], -4.0 * (1 - lr) ** t, rtol=1e-12)
    np.testing.assert_allclose(paths.points[0, 0, :, 1], 0.5 * (1 - 100 * lr) ** t, atol=1e-15)
    np.testing.assert_allclose(paths.losses[0, 0], QUADRATIC.loss(torch.from_numpy(paths.points[0, 0])).numpy())


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_every_pair_moves_exactly_as_its_own_run(optimizer):
    """One optimizer with a param group per (start, lr) == a separate run of each pair (Adam's state is per
    parameter, the losses do not mix)."""
    starts, lrs = starts_for(ROSENBROCK, [0, 1], 0.05), [1e-3, 1e-2, 1e-1]
    together = trajectories(ROSENBROCK, optimizer, lrs, starts, 30)
    for s in range(2):
        for i, lr in enumerate(lrs):
            alone = trajectories(ROSENBROCK, optimizer, [lr], starts[s:s + 1], 30)
            np.testing.assert_array_equal(together.points[s, i], alone.points[0, 0])


def test_steps_to_counts_only_a_loss_that_stays_below():
    losses = np.array([[[5.0, 0.5, 2.0, 0.5, 0.1, 0.05], [5.0, 4.0, 3.0, 0.5, 0.1, 2.0]]])  # (1 start, 2 lrs, 6)
    paths = Paths("SGD", (0.1, 1.0), np.zeros((*losses.shape, 2)), losses)
    steps = paths.steps_to(1.0)
    assert steps[0, 0] == 3 and math.isinf(steps[0, 1])  # the first dips at step 1 and bounces back out
    assert paths.best_lr(1.0).tolist() == [0]


def test_the_best_rate_never_is_a_diverged_one():
    losses = np.array([[[5.0, 3.0, 2.0], [5.0, np.inf, np.nan]]])
    paths = Paths("SGD", (0.1, 10.0), np.zeros((*losses.shape, 2)), losses)
    assert paths.best_lr(1e-3).tolist() == [0]  # neither reaches it; the finite one has the lower final loss


def test_each_seed_starts_near_the_surface_start_and_seeds_differ():
    starts = starts_for(QUADRATIC, [0, 1, 0], 0.05)
    assert torch.equal(starts[0], starts[2]) and not torch.equal(starts[0], starts[1])
    assert (starts - torch.tensor(QUADRATIC.start, dtype=torch.float64)).abs().max() < 0.25


@pytest.mark.parametrize("args,message", [
    (("Adagrad", [0.1], 5), "optimizer 'Adagrad' is not one of: SGD"),
    (("SGD", [], 5), "must be a non-empty list of positive numbers"),
    (("SGD", [0.1, -1.0], 5), "must be a non-empty list of positive numbers"),
    (("SGD", [0.1], 0), "steps"),
])
def test_bad_settings_are_refused_with_what_is_allowed(args, message):
    optimizer, lrs, steps = args
    with pytest.raises(ValueError, match=message):
        trajectories(QUADRATIC, optimizer, lrs, starts_for(QUADRATIC, [0], 0.0), steps)
