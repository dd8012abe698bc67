"""S4/S4D kernels, convolution vs recurrence, the S4D layer and the S4D language model.

References: the dense kernel by matrix powers with ``discretize`` (itself checked against
scipy in test_hippo.py), a direct double loop for the causal convolution, the step-by-step
recurrence, the paper's closed-form initialisations, and autograd.
"""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark_scripts import load_benchmark
from dlnotes.ssm.hippo import discretize
from dlnotes.ssm.s4 import (
    S4DLM,
    S4DLayer,
    discretize_diagonal,
    fft_conv,
    s4d_init,
    s4d_kernel,
    s4d_recurrence,
    ssm_kernel,
)


def random_diagonal_ssm(channels=3, modes=4, seed=0, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    real = -torch.rand(channels, modes, generator=g, dtype=torch.float64) - 0.1
    imag = 5 * torch.randn(channels, modes, generator=g, dtype=torch.float64)
    A = torch.complex(real, imag).to(dtype)
    B = torch.complex(torch.randn(channels, modes, generator=g, dtype=torch.float64),
                      torch.randn(channels, modes, generator=g, dtype=torch.float64)).to(dtype)
    C = torch.complex(torch.randn(channels, modes, generator=g, dtype=torch.float64),
                      torch.randn(channels, modes, generator=g, dtype=torch.float64)).to(dtype)
    dt = torch.exp(torch.rand(channels, generator=g, dtype=torch.float64) * math.log(100) + math.log(1e-3))
    return A, B, C, dt


# ------------------------------------------------------------------------- initialisation
def test_s4d_lin_and_inv_follow_the_papers_formulas():
    N = 8
    lin = s4d_init(N, "lin")
    inv = s4d_init(N, "inv")
    for n in range(N // 2):
        assert lin[n].real.item() == pytest.approx(-0.5) and inv[n].real.item() == pytest.approx(-0.5)
        assert lin[n].imag.item() == pytest.approx(math.pi * n, rel=1e-6)
        assert inv[n].imag.item() == pytest.approx(N / math.pi * (N / (2 * n + 1) - 1), rel=1e-6)


@pytest.mark.parametrize("d_state", [0, 3, -2, 2.0])
def test_s4d_init_rejects_bad_state_sizes(d_state):
    with pytest.raises(ValueError, match="d_state"):
        s4d_init(d_state)


def test_s4d_init_rejects_unknown_init():
    with pytest.raises(ValueError, match="init"):
        s4d_init(4, "legs")


# -------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_diagonal_discretisation_is_the_dense_one_on_a_diagonal_matrix(method):
    A, B, _, dt = random_diagonal_ssm(channels=1, modes=5)
    A_bar, B_bar = discretize_diagonal(A[0], B[0], dt[0], method)
    dense_A, dense_B = discretize(torch.diag(A[0]), B[0], dt[0].item(), method)
    torch.testing.assert_close(A_bar, torch.diagonal(dense_A))
    torch.testing.assert_close(B_bar, dense_B)


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_vandermonde_kernel_equals_dense_matrix_powers(method):
    """Complex diagonal S4D kernel vs C Ā^j B̄ with a dense (2·modes) real-state matrix."""
    A, B, C, dt = random_diagonal_ssm(channels=3, modes=4)
    length = 50
    ours = s4d_kernel(A, B, C, dt, length, method)
    for h in range(3):
        # The conjugate pairs as one dense complex diagonal of size N = 2 · modes.
        dense_A = torch.diag(torch.cat([A[h], A[h].conj()]))
        A_bar, B_bar = discretize(dense_A, torch.cat([B[h], B[h].conj()]), dt[h].item(), method)
        reference = ssm_kernel(A_bar, B_bar, torch.cat([C[h], C[h].conj()]), length)
        assert reference.imag.abs().max() < 1e-10, "conjugate pairs must give a real kernel"
        torch.testing.assert_close(ours[h], reference.real, rtol=1e-9, atol=1e-10)


def test_kernel_of_a_real_block_ssm_matches_the_complex_pair():
    """A conjugate pair a, ā is a real 2x2 rotation-decay block; its kernel is the same."""
    a, b, c, dt = -0.3 + 2.0j, 0.7 - 0.2j, 1.1 + 0.4j, 0.05
    A_real = torch.tensor([[a.real, -a.imag], [a.imag, a.real]], dtype=torch.float64)  # x = (Re z, Im z)
    B_real = torch.tensor([2 * b.real, 2 * b.imag], dtype=torch.float64)
    C_real = torch.tensor([c.real, -c.imag], dtype=torch.float64)  # 2 Re(c z) / 2 per component
    A_bar, B_bar = discretize(A_real, B_real, dt, "zoh")
    reference = ssm_kernel(A_bar, B_bar, C_real, 30)
    ours = s4d_kernel(*(torch.tensor([[v]], dtype=torch.complex128) for v in (a, b, c)),
                      torch.tensor([dt], dtype=torch.float64), 30)
    torch.testing.assert_close(ours[0], reference, rtol=1e-9, atol=1e-12)


def test_ssm_kernel_scalar_closed_form():
    kernel = ssm_kernel(torch.tensor([[0.9]], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64),
                        torch.tensor([3.0], dtype=torch.float64), 6)
    torch.testing.assert_close(kernel, torch.tensor([6.0 * 0.9**j for j in range(6)], dtype=torch.float64))


def test_kernel_errors():
    A, B, C, dt = random_diagonal_ssm()
    with pytest.raises(ValueError, match="A_bar"):
        ssm_kernel(torch.zeros(2, 3), torch.zeros(2), torch.zeros(2), 4)
    with pytest.raises(ValueError, match="B_bar"):
        ssm_kernel(torch.zeros(2, 2), torch.zeros(3), torch.zeros(2), 4)
    with pytest.raises(ValueError, match="length"):
        ssm_kernel(torch.zeros(2, 2), torch.zeros(2), torch.zeros(2), 0)
    with pytest.raises(ValueError, match="A must be"):
        s4d_kernel(A[0], B[0], C[0], dt, 4)
    with pytest.raises(ValueError, match="C must"):
        s4d_kernel(A, B, C[:, :2], dt, 4)
    with pytest.raises(ValueError, match="dt"):
        s4d_kernel(A, B, C, dt[:2], 4)
    with pytest.raises(ValueError, match="discretization"):
        s4d_kernel(A, B, C, dt, 4, "euler")
    with pytest.raises(ValueError, match="method"):
        discretize_diagonal(A, B, dt[:, None], "forward")


# ------------------------------------------------------------- convolution vs recurrence
def direct_causal_conv(u, kernel):
    y = torch.zeros_like(u)
    for k in range(u.shape[-1]):
        for j in range(k + 1):
            y[..., k] += kernel[:, j] * u[..., k - j]
    return y


@settings(max_examples=25, deadline=None)
@given(length=st.integers(1, 40), channels=st.integers(1, 3), batch=st.integers(1, 2), seed=st.integers(0, 1000))
def test_fft_conv_is_the_linear_causal_convolution(length, channels, batch, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, channels, length, generator=g, dtype=torch.float64)
    kernel = torch.randn(channels, length, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fft_conv(u, kernel), direct_causal_conv(u, kernel))


def test_fft_without_padding_would_wrap_around():
    """The reason for 2L: an L-point FFT product is circular, and differs."""
    u = torch.randn(1, 1, 16, dtype=torch.float64)
    kernel = torch.randn(1, 16, dtype=torch.float64)
    circular = torch.fft.irfft(torch.fft.rfft(u) * torch.fft.rfft(kernel), n=16)
    assert (circular - direct_causal_conv(u, kernel)).abs().max() > 1e-3


def test_fft_conv_rejects_mismatched_kernel():
    with pytest.raises(ValueError, match="kernel"):
        fft_conv(torch.zeros(2, 3, 8), torch.zeros(3, 7))


@pytest.mark.parametrize("method", ["zoh", "bilinear"])
def test_convolution_mode_equals_recurrent_mode(method):
    A, B, C, dt = random_diagonal_ssm(channels=3, modes=4, seed=1)
    u = torch.randn(2, 3, 64, dtype=torch.float64)
    conv = fft_conv(u, s4d_kernel(A, B, C, dt, 64, method))
    A_bar, B_bar = discretize_diagonal(A, B, dt[:, None], method)
    torch.testing.assert_close(conv, s4d_recurrence(u, A_bar, B_bar, C), rtol=1e-9, atol=1e-10)


def test_recurrence_errors():
    A, B, C, dt = random_diagonal_ssm(channels=3, modes=4)
    with pytest.raises(ValueError, match="u must"):
        s4d_recurrence(torch.zeros(3, 8), A, B, C)
    with pytest.raises(ValueError, match="A_bar"):
        s4d_recurrence(torch.zeros(1, 2, 8), A, B, C)
    with pytest.raises(ValueError, match="B_bar"):
        s4d_recurrence(torch.zeros(1, 3, 8), A, B[:, :3], C)


# -------------------------------------------------------------------------------- S4DLayer
@pytest.mark.parametrize("init", ["inv", "lin"])
@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_layer_shape_and_causality(init, discretization):
    torch.manual_seed(0)
    layer = S4DLayer(6, d_state=8, init=init, discretization=discretization)
    u = torch.randn(2, 20, 6)
    y = layer(u)
    assert y.shape == (2, 20, 6)
    changed = u.clone()
    changed[:, 12:] = torch.randn(2, 8, 6)  # change only the future of position 11
    y2 = layer(changed)
    torch.testing.assert_close(y2[:, :12], y[:, :12], rtol=1e-5, atol=1e-5)
    assert (y2[:, 12:] - y[:, 12:]).abs().max() > 1e-3, "the future must matter to later outputs"


def test_layer_dt_starts_inside_its_range():
    layer = S4DLayer(200, d_state=4, dt_min=1e-3, dt_max=1e-1)
    dt = torch.exp(layer.log_dt)
    assert dt.min() >= 1e-3 - 1e-9 and dt.max() <= 1e-1 + 1e-9
    assert dt.min() < 3e-3 and dt.max() > 3e-2, "log-uniform draws should cover the range"
    torch.testing.assert_close(layer.A[0], s4d_init(4, "inv"))


@pytest.mark.parametrize("discretization", ["zoh", "bilinear"])
def test_layer_step_by_step_equals_forward(discretization):
    torch.manual_seed(1)
    layer = S4DLayer(5, d_state=6, discretization=discretization, dt_min=0.01, dt_max=0.5)
    u = torch.randn(3, 30, 5)
    full = layer(u)
    state = None
    outputs = []
    for k in range(30):
        out, state = layer.step(u[:, k], state)
        outputs.append(out)
    torch.testing.assert_close(torch.stack(outputs, dim=1), full, rtol=1e-4, atol=1e-4)


def test_layer_gradients_reach_every_parameter():
    torch.manual_seed(2)
    layer = S4DLayer(4, d_state=4)
    layer(torch.randn(2, 16, 4)).square().sum().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reached {name}"


def test_layer_kernel_gradient_matches_finite_differences():
    """Autograd through the complex Vandermonde kernel, in float64."""
    torch.manual_seed(3)
    layer = S4DLayer(2, d_state=4).double()
    params = [layer.log_dt, layer.A_real_log, layer.A_imag, layer.B, layer.C]

    def functional(log_dt, A_real_log, A_imag, B, C):
        A = torch.complex(-torch.exp(A_real_log), A_imag)
        return s4d_kernel(A, torch.view_as_complex(B), torch.view_as_complex(C), torch.exp(log_dt), 12)

    inputs = tuple(p.detach().clone().requires_grad_(True) for p in params)
    torch.testing.assert_close(functional(*inputs), layer.kernel(12))
    assert torch.autograd.gradcheck(functional, inputs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"d_model": 0}, "d_model"),
        ({"d_model": 4, "d_state": 5}, "d_state"),
        ({"d_model": 4, "init": "legs"}, "init"),
        ({"d_model": 4, "discretization": "euler"}, "discretization"),
        ({"d_model": 4, "dt_min": 0.2, "dt_max": 0.1}, "dt_min"),
        ({"d_model": 4, "dropout": 1.0}, "dropout"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        S4DLayer(**kwargs)


def test_layer_rejects_bad_inputs():
    layer = S4DLayer(4, d_state=4)
    with pytest.raises(ValueError, match="u must be"):
        layer(torch.randn(8, 4))  # no batch
    with pytest.raises(ValueError, match="u must be"):
        layer(torch.randn(2, 8, 5))  # wrong width
    with pytest.raises(ValueError, match="u must be"):
        layer.step(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="state"):
        layer.step(torch.randn(2, 4), torch.zeros(2, 4, 3, dtype=torch.complex64))


# ------------------------------------------------------------------------------- S4DLM
def test_lm_shapes_tied_head_and_causality():
    torch.manual_seed(0)
    model = S4DLM(vocab_size=11, d_model=16, n_layer=2, d_state=8)
    assert model.lm_head.weight is model.embedding.weight
    ids = torch.randint(0, 11, (2, 12))
    logits = model(ids)
    assert logits.shape == (2, 12, 11)
    changed = ids.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 11
    torch.testing.assert_close(model(changed)[:, :7], logits[:, :7], rtol=1e-5, atol=1e-5)


def test_lm_step_equals_forward():
    torch.manual_seed(4)
    model = S4DLM(vocab_size=7, d_model=8, n_layer=2, d_state=4)
    ids = torch.randint(0, 7, (2, 10))
    full = model(ids)
    states = None
    for k in range(10):
        logits, states = model.step(ids[:, k], states)
        torch.testing.assert_close(logits, full[:, k], rtol=1e-4, atol=1e-4)


def test_lm_learns_to_copy_a_token_from_far_back():
    """Target at position t is the token at t - 20: a pure delay, which an LTI kernel can learn."""
    torch.manual_seed(0)
    model = S4DLM(vocab_size=4, d_model=16, n_layer=1, d_state=16, init="lin")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(100):
        ids = torch.randint(0, 4, (16, 48), generator=g)
        logits = model(ids)[:, 20:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 4), ids[:, :-20].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    ids = torch.randint(0, 4, (64, 48), generator=g)
    accuracy = (model(ids)[:, 20:].argmax(-1) == ids[:, :-20]).float().mean().item()
    assert accuracy > 0.6, f"accuracy {accuracy:.2f} on a 20-step delay (chance 0.25)"


def test_lm_rejects_bad_inputs():
    model = S4DLM(vocab_size=5, d_model=8, n_layer=1, d_state=4)
    with pytest.raises(ValueError, match="ids"):
        model(torch.randn(2, 3))
    with pytest.raises(ValueError, match="ids"):
        model(torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="ids"):
        model.step(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="states"):
        model.step(torch.zeros(2, dtype=torch.long), [])
    with pytest.raises(ValueError, match="n_layer"):
        S4DLM(vocab_size=5, n_layer=0)


# ------------------------------------------------------------- long-range results file
def test_long_range_results_match_the_script_and_back_the_chapters_claim():
    # (that the chapter shows the rendered table: tests/site/test_benchmark_tables.py)
    import json

    from docs_lint import ROOT

    benchmark = load_benchmark("s4d_long_range.py")
    results = json.loads((ROOT / benchmark.RESULTS).read_text())
    assert results["config"] == benchmark.CONFIG, "the results file is stale: rerun the benchmark"
    assert [row["delay"] for row in results["rows"]] == benchmark.CONFIG["delays"]
    assert results["parameters"]["lstm"] <= results["parameters"]["s4d"], "the LSTM must not be larger"
    for row in results["rows"]:  # the claim the chapter makes
        best_s4d = min(row["s4d_inv"]["test_mse"], row["s4d_lin"]["test_mse"])
        assert best_s4d < 0.2 * row["lstm"]["test_mse"], row


def test_long_range_lstm_width_matches_the_parameter_budget():
    benchmark = load_benchmark("s4d_long_range.py")
    model = benchmark.S4DRegressor(16, 64, "inv")
    budget = benchmark.parameter_count(model)
    hidden = benchmark.matching_lstm_width(budget)
    lstm = torch.nn.LSTM(1, hidden)  # 4h(1 + h) weights + 8h biases, plus the decoder h + 1
    expected = 4 * hidden * (hidden + 1) + 8 * hidden + hidden + 1
    assert benchmark.parameter_count(benchmark.LSTMRegressor(hidden)) == expected
    assert sum(p.numel() for p in lstm.parameters()) + hidden + 1 <= budget
    assert benchmark.parameter_count(benchmark.LSTMRegressor(hidden + 1)) > budget


def test_long_range_benchmark_runs_end_to_end_on_a_tiny_config():
    benchmark = load_benchmark("s4d_long_range.py")
    config = dict(benchmark.CONFIG, length=32, delays=[4], steps=3, d_model=4, d_state=8, test_batch=4)
    results = benchmark.run(config)
    row = results["rows"][0]
    assert row["delay"] == 4 and {"s4d_inv", "s4d_lin", "s4", "lstm"} <= set(row)
    assert all(row[name]["test_mse"] > 0 for name in ("s4d_inv", "s4d_lin", "s4", "lstm"))
    assert "| 4 |" in benchmark.render(results)
