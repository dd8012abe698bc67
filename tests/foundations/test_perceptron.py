"""The perceptron against a linear-programming separability test, Novikoff's bound and
closed forms; the bias-before-BatchNorm cancellation against torch.nn layers."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog
from torch import nn

from dlnotes.foundations.functional import BatchNorm2d, Conv2d, batch_norm
from dlnotes.foundations.perceptron import (
    PerceptronFit,
    fits,
    mistake_bound,
    offset_dataset,
    predict,
    threshold_unit,
    train_perceptron,
)

GATES = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
AND = torch.tensor([-1, -1, -1, 1])
OR = torch.tensor([-1, 1, 1, 1])


def strictly_separable(points, labels, use_bias):
    """Independent reference: is {y_i (w . x_i + b) >= 1 for all i} feasible? (a linear program)."""
    x = points.double().numpy()
    y = labels.double().numpy()
    if use_bias:
        x = np.hstack([x, np.ones((len(x), 1))])
    result = linprog(np.zeros(x.shape[1]), A_ub=-(y[:, None] * x), b_ub=-np.ones(len(x)),
                     bounds=[(None, None)] * x.shape[1], method="highs")
    return result.status == 0  # 0: feasible optimum found, 2: infeasible


@st.composite
def separable_data(draw):
    """Random points labelled by a random hyperplane, with the points near it removed."""
    dim = draw(st.integers(1, 4))
    n = draw(st.integers(2, 40))
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    true_weight = torch.randn(dim, generator=generator, dtype=torch.float64)
    true_weight /= true_weight.norm()
    true_bias = draw(st.floats(-2, 2))
    points = 3 * torch.randn(n, dim, generator=generator, dtype=torch.float64)
    scores = points @ true_weight + true_bias
    points = points[scores.abs() > 0.2]
    if len(points) == 0:
        points = (true_weight * (1.0 - true_bias))[None]  # score exactly 1
    labels = torch.where(points @ true_weight + true_bias > 0, 1, -1)
    return points, labels, true_weight, true_bias


# ---------------------------------------------------------------- threshold and bias


def test_threshold_unit_is_predict_with_bias_minus_threshold():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(500, 3, generator=generator)
    weight = torch.randn(3, generator=generator)
    for threshold in (-1.0, 0.0, 0.7, 2.5):
        fired = threshold_unit(points, weight, threshold)
        assert torch.equal(fired == 1, predict(points, weight, bias=-threshold) == 1), threshold


def test_threshold_gates_by_hand():
    assert threshold_unit(GATES, torch.tensor([1.0, 1.0]), 1.5).tolist() == [0, 0, 0, 1]  # AND
    assert threshold_unit(GATES, torch.tensor([1.0, 1.0]), 0.5).tolist() == [0, 1, 1, 1]  # OR
    # A larger threshold is harder to reach: with T = 2.5 nothing fires.
    assert threshold_unit(GATES, torch.tensor([1.0, 1.0]), 2.5).tolist() == [0, 0, 0, 0]


# ---------------------------------------------------------------- learning rule


@pytest.mark.parametrize(("labels", "name"), [(AND, "AND"), (OR, "OR")])
def test_learns_gates_with_bias(labels, name):
    fit = train_perceptron(GATES, labels)
    assert fit.converged, name
    assert torch.equal(predict(GATES, fit.weight, fit.bias), labels), name
    assert fits(GATES, labels, fit.weight, fit.bias)
    assert fit.mistakes == sum(fit.mistakes_per_epoch) and fit.mistakes_per_epoch[-1] == 0


def test_first_updates_by_hand():
    """From zero: (0,0) with label -1 is a mistake (score 0), so b = -1; then (1,1) with +1 gives w = (1,1), b = 0."""
    fit = train_perceptron(GATES, AND, max_epochs=1)
    assert fit.weight.tolist() == [1.0, 1.0] and fit.bias == 0.0 and fit.mistakes == 2 and not fit.converged


def test_and_needs_a_bias():
    assert strictly_separable(GATES, AND, use_bias=True)
    assert not strictly_separable(GATES, AND, use_bias=False)
    fit = train_perceptron(GATES, AND, use_bias=False, max_epochs=50)
    assert not fit.converged and fit.epochs == 50 and fit.bias == 0.0
    assert not fits(GATES, AND, fit.weight)


def test_bias_is_a_weight_on_a_constant_input():
    points, labels = offset_dataset(30, seed=3)
    augmented = torch.cat([points, torch.ones(len(points), 1, dtype=points.dtype)], dim=1)
    with_bias = train_perceptron(points, labels)
    on_augmented = train_perceptron(augmented, labels, use_bias=False)
    torch.testing.assert_close(on_augmented.weight, torch.cat([with_bias.weight, torch.tensor([with_bias.bias], dtype=torch.float64)]))
    assert with_bias.mistakes_per_epoch == on_augmented.mistakes_per_epoch


def test_learning_rate_only_rescales_from_zero():
    points, labels = offset_dataset(30, seed=1)
    unit, half = train_perceptron(points, labels), train_perceptron(points, labels, learning_rate=0.5)
    torch.testing.assert_close(half.weight, unit.weight / 2)
    assert half.bias == unit.bias / 2 and half.mistakes == unit.mistakes


@settings(max_examples=60, deadline=None)
@given(data=separable_data())
def test_converges_within_novikoff_bound(data):
    points, labels, true_weight, true_bias = data
    assert strictly_separable(points, labels, use_bias=True)
    bound = mistake_bound(points, labels, true_weight, true_bias)
    fit = train_perceptron(points, labels, max_epochs=int(bound) + 2)
    assert fit.converged
    assert fit.mistakes <= bound, (fit.mistakes, bound)
    assert fits(points, labels, fit.weight, fit.bias)
    assert torch.equal(predict(points, fit.weight, fit.bias), labels)


def test_mistake_bound_by_hand():
    # x~ = (1, 1), (3, 1); u = (1, -2) / sqrt(5); margins 1 / sqrt(5); R^2 = 10 -> 10 * 5
    bound = mistake_bound(torch.tensor([[1.0], [3.0]]), torch.tensor([-1, 1]), torch.tensor([1.0]), -2.0)
    assert abs(bound - 50.0) < 1e-9
    # without a bias: x = 1, 3 labelled -1, +1 cannot be separated through the origin
    with pytest.raises(ValueError, match="positive margin"):
        mistake_bound(torch.tensor([[1.0], [3.0]]), torch.tensor([-1, 1]), torch.tensor([1.0]), use_bias=False)


# ---------------------------------------------------------------- the offset data set


def test_offset_dataset_properties():
    points, labels = offset_dataset(50, margin=0.3, seed=2)
    assert points.shape == (50, 2) and points.dtype == torch.float64 and labels.dtype == torch.int64
    assert torch.equal(points[1], -points[0]) and labels[0] == labels[1] == 1
    distance = (points.sum(dim=1) - 1).abs() / 2**0.5
    assert distance.min() >= 0.3
    assert torch.equal(labels, predict(points, torch.tensor([-1.0, -1.0]), bias=1.0))
    assert (labels == 1).any() and (labels == -1).any()
    again, _ = offset_dataset(50, margin=0.3, seed=2)
    assert torch.equal(points, again)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offset_dataset_needs_the_bias(seed):
    points, labels = offset_dataset(40, seed=seed)
    assert strictly_separable(points, labels, use_bias=True)
    assert not strictly_separable(points, labels, use_bias=False)
    with_bias = train_perceptron(points, labels)
    assert with_bias.converged and with_bias.mistakes <= mistake_bound(points, labels, torch.tensor([-1.0, -1.0]), 1.0)
    without = train_perceptron(points, labels, use_bias=False, max_epochs=30)
    assert not without.converged and without.mistakes_per_epoch[-1] > 0


def test_symmetric_pair_defeats_every_bias_free_weight():
    """The proof, checked on many directions: w . p > 0 and w . (-p) > 0 never hold together."""
    points, labels = offset_dataset(10)
    angles = torch.linspace(0, 2 * torch.pi, 721, dtype=torch.float64)
    for weight in torch.stack([angles.cos(), angles.sin()], dim=1):
        assert not fits(points[:2], labels[:2], weight)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: train_perceptron(GATES.numpy(), AND), TypeError, "points must be a torch.Tensor"),
        (lambda: train_perceptron(GATES[0], AND), ValueError, r"points must have shape \(n, d\)"),
        (lambda: train_perceptron(GATES[:0], AND[:0]), ValueError, r"points must have shape \(n, d\) with n >= 1"),
        (lambda: train_perceptron(GATES, AND[:3]), ValueError, r"labels must have shape \(4,\)"),
        (lambda: train_perceptron(GATES, torch.tensor([0, 0, 0, 1])), ValueError, "labels must be -1 or \\+1"),
        (lambda: train_perceptron(GATES, AND, learning_rate=0.0), ValueError, "learning_rate must be > 0"),
        (lambda: train_perceptron(GATES, AND, max_epochs=0), ValueError, "max_epochs must be >= 1"),
        (lambda: train_perceptron(GATES, AND, max_epochs=2.0), TypeError, "max_epochs must be an int"),
        (lambda: predict(GATES, torch.ones(3)), ValueError, r"points must be \(n, d\) and weight \(d,\)"),
        (lambda: threshold_unit(GATES, [1.0, 1.0], 0.5), TypeError, "weight must be a torch.Tensor"),
        (lambda: fits(GATES, AND, torch.ones(3)), ValueError, "weight \\(d,\\)"),
        (lambda: mistake_bound(GATES, AND, torch.ones(2), 1.0, use_bias=False), ValueError, "bias must be 0"),
        (lambda: mistake_bound(GATES, AND, torch.zeros(2)), ValueError, "positive margin"),
        (lambda: offset_dataset(1), ValueError, "n must be >= 2"),
        (lambda: offset_dataset(10.0), TypeError, "n must be an int"),
        (lambda: offset_dataset(10, margin=0.8), ValueError, r"margin must be in \[0, 0.5\]"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_progress_bar_does_not_change_the_result():
    shown, quiet = train_perceptron(GATES, OR, progress=True), train_perceptron(GATES, OR)
    assert isinstance(shown, PerceptronFit)
    assert torch.equal(shown.weight, quiet.weight) and shown.bias == quiet.bias and shown.epochs == quiet.epochs


# ---------------------------------------------------------------- bias before BatchNorm


@pytest.mark.parametrize("make_norm", [nn.BatchNorm1d, lambda c: nn.BatchNorm1d(c, affine=False)])
def test_linear_bias_is_cancelled_by_batch_norm(make_norm):
    torch.manual_seed(0)
    with_bias = nn.Linear(5, 4).double()
    without_bias = nn.Linear(5, 4, bias=False).double()
    with torch.no_grad():
        without_bias.weight.copy_(with_bias.weight)
        with_bias.bias.copy_(torch.tensor([3.0, -7.0, 0.5, 100.0]))  # large, to make the point
    norm_a, norm_b = make_norm(4).double(), make_norm(4).double()
    x = torch.randn(16, 5, dtype=torch.float64)
    out_a, out_b = norm_a(with_bias(x)), norm_b(without_bias(x))
    torch.testing.assert_close(out_a, out_b, rtol=1e-9, atol=1e-9)
    # The loss does not depend on the bias, so its gradient vanishes (up to rounding).
    (out_a * torch.randn_like(out_a)).sum().backward()
    assert with_bias.bias.grad.abs().max() < 1e-9
    assert with_bias.weight.grad.abs().max() > 1e-3, "the weights still learn"
    # ...while the running mean absorbed momentum * bias (it is updated with the biased output).
    torch.testing.assert_close(norm_a.running_mean - norm_b.running_mean, 0.1 * with_bias.bias.detach())


def test_conv_bias_is_cancelled_by_our_batch_norm_in_training():
    torch.manual_seed(1)
    conv = Conv2d(3, 6, 3, padding=1).double()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    with_bias = batch_norm(conv(x), None, None, training=True)
    without_bias = batch_norm(conv(x) - conv.bias.reshape(1, -1, 1, 1), None, None, training=True)
    torch.testing.assert_close(with_bias, without_bias, rtol=1e-9, atol=1e-9)
    reference = nn.functional.batch_norm(nn.functional.conv2d(x, conv.weight, None, padding=1), None, None, training=True)
    torch.testing.assert_close(with_bias, reference, rtol=1e-9, atol=1e-9)
    grad = torch.autograd.grad((with_bias ** 3).sum(), conv.bias)[0]
    assert grad.abs().max() < 1e-9, grad


@pytest.mark.parametrize("momentum", [0.1, None])
def test_eval_mode_after_training_closed_form(momentum):
    """In eval the bias is subtracted by the running mean only as far as that mean has absorbed it.

    running_mean(with bias) - running_mean(without) = b * (1 - (1 - m)^t) for momentum m
    after t batches, and exactly b for the cumulative average (momentum=None).
    """
    torch.manual_seed(2)
    conv_a = Conv2d(2, 3, 3, bias=True).double()
    conv_b = Conv2d(2, 3, 3, bias=False).double()
    conv_b.load_state_dict({"weight": conv_a.weight.detach()})
    norm_a, norm_b = BatchNorm2d(3, momentum=momentum).double(), BatchNorm2d(3, momentum=momentum).double()
    steps = 4
    for _ in range(steps):
        x = torch.randn(5, 2, 6, 6, dtype=torch.float64)
        norm_a(conv_a(x)), norm_b(conv_b(x))
    absorbed = 1.0 if momentum is None else 1 - (1 - momentum) ** steps
    torch.testing.assert_close(norm_a.running_mean - norm_b.running_mean, absorbed * conv_a.bias.detach())
    torch.testing.assert_close(norm_a.running_var, norm_b.running_var)
    norm_a.eval(), norm_b.eval()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64)
    gap = (norm_a(conv_a(x)) - norm_b(conv_b(x))).detach()
    expected = (1 - absorbed) * conv_a.bias.detach() / torch.sqrt(norm_b.running_var + 1e-5)
    torch.testing.assert_close(gap, expected.reshape(1, 3, 1, 1).expand_as(gap))
