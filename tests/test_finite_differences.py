"""dlbasics.finite_differences and lesson L2.d: central differences against known derivatives and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F

from dlbasics.backprop import EXAMPLES, backprop
from dlbasics.finite_differences import (
    autograd_gradient,
    central_difference,
    central_differences,
    gradcheck,
    module_loss,
    step_sweep,
    unflatten,
)
from dlbasics.lessons import backprop_lesson
from dlbasics.lessons import numerical_gradients as l2d
from dlbasics.lessons.claims import evaluate
from dlbasics.lessons.context import LessonContext
from dlbasics.models.components import MLP

X = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
A = torch.tensor([1.5, -0.5, 2.0], dtype=torch.float64)
B = torch.tensor([0.2, 1.0, -3.0], dtype=torch.float64)


def quadratic(x):
    return (A * x**2 + B * x).sum()  # gradient 2 A x + B; its third derivative is 0


def test_the_central_difference_of_a_quadratic_is_exact_up_to_rounding_at_any_step():
    for h in (1e-4, 0.1, 0.5, 3.0):  # no truncation error: only rounding, ~eps |f| / h
        torch.testing.assert_close(central_difference(quadratic, X, h), 2 * A * X + B, rtol=0, atol=1e-10)


def test_the_central_difference_of_sin_has_the_truncation_error_h_squared_over_six():
    x = torch.tensor([1.0], dtype=torch.float64)
    for h in (1e-1, 1e-2):  # (sin(x + h) - sin(x - h)) / 2h = cos(x) sin(h) / h = cos(x) (1 - h^2 / 6 + ...)
        error = math.cos(1.0) - central_difference(lambda t: torch.sin(t).sum(), x, h).item()
        assert error == pytest.approx(math.cos(1.0) * h**2 / 6, rel=0.01)
    assert central_difference(lambda t: torch.sin(t).sum(), x, 1e-5).item() == pytest.approx(math.cos(1.0), abs=1e-9)


def test_one_batch_of_steps_equals_each_step_alone_and_the_loop_equals_vmap():
    hs = [1e-3, 1e-6]
    batch = central_differences(quadratic, X, hs)
    assert batch.shape == (2, 3)
    for row, h in zip(batch, hs):
        torch.testing.assert_close(row, central_difference(quadratic, X, h, vectorize=False), rtol=0, atol=1e-12)


def net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP([2], 3, [5], activation="tanh")
        x, y = torch.randn(7, 2), torch.randint(0, 3, (7,))
    return model, x, y


def test_finite_differences_match_autograd_on_the_l2a_net_and_an_mlp_in_float64():
    for case in EXAMPLES.values():
        fd, auto = l2d.l2a_differences(case), backprop(**case).autograd
        for name in auto:
            torch.testing.assert_close(fd[name], auto[name], rtol=0, atol=1e-8)
    model, x, y = net()
    before = [p.detach().clone() for p in model.parameters()]
    theta, f = module_loss(model, x, y, F.cross_entropy)
    fd = unflatten(model, central_difference(f, theta.double(), 1e-6))
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))  # f moved none of the module's weights
    F.cross_entropy(model.double()(x.double()), y).backward()  # plain autograd on the module itself
    for name, p in model.named_parameters():
        assert fd[name].shape == p.shape and fd[name].dtype == torch.float64
        torch.testing.assert_close(fd[name], p.grad, rtol=0, atol=1e-8)


def test_the_mlp_loss_computes_in_the_dtype_of_its_parameters():
    model, x, y = net()
    theta, f = module_loss(model, x, y, F.cross_entropy)
    assert theta.dtype == torch.float32 and f(theta).dtype == torch.float32 and f(theta.double()).dtype == torch.float64
    assert f(theta).item() == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)


class WrongSquare(torch.autograd.Function):
    """x^2 with a deliberately wrong backward: x instead of 2 x."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x**2

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x


def test_gradcheck_passes_on_correct_backwards_and_catches_a_wrong_one():
    model, x, y = net()
    assert gradcheck(*reversed(module_loss(model, x, y, F.cross_entropy)))
    theta, f = l2d.l2a_function(EXAMPLES["worked"])
    assert gradcheck(f, theta)
    assert gradcheck(lambda t: t**2, X)
    assert not gradcheck(WrongSquare.apply, X)
    assert not gradcheck(lambda t: WrongSquare.apply(t).sum(), X.float())  # cast to float64 first: still caught


def test_float32s_best_step_is_larger_than_float64s_and_float64_agrees_within_1e_6_there():
    model, x, y = net(seed=3)
    theta, f = module_loss(model, x, y, F.cross_entropy)
    sweep = step_sweep(f, theta, l2d.HS)
    (h32, e32), (h64, e64) = sweep.best("float32"), sweep.best("float64")
    assert h32 > 100 * h64 and e64 < 1e-6 < e32  # float32: h ~ 1e-2, error ~1e-5; float64: h ~ 1e-5, ~1e-11
    assert sweep.errors["float64"][0] > 1e3 * e64 and sweep.errors["float64"][-1] > 1e3 * e64  # a U: up at both ends
    reference = autograd_gradient(f, theta.double())
    assert sweep.errors["float32"][0] == pytest.approx(reference.abs().max().item())  # x + 1e-12 == x in float32


@pytest.mark.parametrize("h", [0.0, -1e-3, float("nan"), float("inf"), "0.1", True])
def test_a_step_that_is_not_a_positive_number_is_refused(h):
    with pytest.raises(ValueError, match=r"must be a finite number"):
        central_difference(quadratic, X, h)
    with pytest.raises(ValueError, match=r"hs\[1\]"):
        step_sweep(quadratic, X, [1e-3, h])


@pytest.mark.parametrize("hs", [[], (), torch.tensor([]), "1e-3", None])
def test_an_empty_or_missing_step_grid_is_refused(hs):
    with pytest.raises(ValueError, match="non-empty list of steps"):
        step_sweep(quadratic, X, hs)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64])
def test_dtypes_other_than_float32_and_float64_are_refused(dtype):
    with pytest.raises(ValueError, match="is not one of: float32, float64"):
        central_difference(quadratic, X.to(dtype), 1e-3)
    with pytest.raises(ValueError, match="is not one of: float32, float64"):
        step_sweep(quadratic, X, [1e-3], dtypes=[dtype])


def test_mps_is_refused_for_float64_before_anything_runs():
    for call in (lambda: gradcheck(quadratic, X, device="mps"), lambda: step_sweep(quadratic, X, [1e-3], device="mps")):
        with pytest.raises(ValueError, match="MPS has no float64.*device='cpu'"):
            call()


def test_functions_and_modules_that_cannot_be_differentiated_are_refused_clearly():
    with pytest.raises(ValueError, match=r"single number \(a loss\), got \(3,\)"):
        central_difference(lambda t: t * 2, X, 1e-3)
    with pytest.raises(ValueError, match="pass vectorize=False"):
        central_difference(lambda t: t.sum() * t[0].item(), X, 1e-3)
    assert central_difference(lambda t: t.sum() * t[0].item(), X, 1e-3, vectorize=False).shape == X.shape
    with pytest.raises(ValueError, match="has no parameter that requires grad"):
        module_loss(torch.nn.ReLU(), X, X, F.mse_loss)
    with pytest.raises(ValueError, match="flat has 3 entries, but MLP's parameters have 33"):
        unflatten(net()[0], X)


def test_each_seed_checks_its_own_mlp_and_leaves_the_random_state_alone():
    state = torch.random.get_rng_state()
    first, second = l2d.check_seed(0), l2d.check_seed(1)
    assert torch.equal(state, torch.random.get_rng_state())
    assert first.loss != second.loss and first.sweep.errors != second.sweep.errors  # the claims vary with the seed
    assert first.gradcheck and first.best_h_decades() > 0


def test_the_lesson_part_records_each_seed_for_its_claims_and_draws_the_figure(tmp_path):
    ctx, threads = LessonContext("backprop", tmp_path), torch.get_num_threads()
    l2d.run(ctx, [0, 1])
    assert torch.get_num_threads() == threads
    assert [p.name for p in ctx.figures] == ["l2d_finite_difference_error.png"]
    assert "finite diff" in ctx.report.text and set(ctx.by_seed) == {0, 1}
    claims = [c for c in backprop_lesson.CLAIMS if c.code == "L2.d"]
    results = evaluate(claims, {seed: runs for seed, runs in ctx.by_seed.items()})
    assert [r.n for r in results] == [2, 2] and all(r.holds for r in results)
    assert len(set(results[0].estimate.values)) == 2  # two seeds, two different measures
