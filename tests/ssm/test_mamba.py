"""Selective scan, Mamba block and Mamba LM against independent references.

References: an explicit float64 loop over batch/dim/state/time written here, the
sequential scan (for the fast methods, values and autograd gradients), the block's own
full-sequence forward (for token-by-token stepping) and a training run.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from dlnotes._triton import default_device
from dlnotes.ssm.mamba import METHODS, MambaBlock, MambaConfig, MambaLM, selective_scan, selective_scan_step

FAST = [method for method in METHODS if method != "sequential"]


def device_for(method):
    """Triton kernels take CUDA tensors on a GPU (CPU ones under the interpreter); the rest run on CPU."""
    return default_device() if method == "triton" else torch.device("cpu")


def to_device(inputs, method):
    return {name: None if t is None else t.to(device_for(method)) for name, t in inputs.items()}


def make_inputs(batch=2, dim=6, length=9, state=4, kind="variable", groups=2, seed=0, requires_grad=False):
    """Random scan inputs; B/C ``kind`` is "fixed" (dim, state), "variable" or "grouped"."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    shapes = {
        "fixed": (dim, state),
        "variable": (batch, state, length),
        "grouped": (batch, groups, state, length),
    }[kind]
    inputs = {
        "u": rand(batch, dim, length),
        "delta": 0.5 * rand(batch, dim, length),
        "A": -torch.rand(dim, state, generator=g) * 2 - 0.1,
        "B": rand(*shapes),
        "C": rand(*shapes),
        "D": rand(dim),
        "z": rand(batch, dim, length),
        "delta_bias": 0.5 * rand(dim),
    }
    if requires_grad:
        for tensor in inputs.values():
            tensor.requires_grad_(True)
    return inputs


def loop_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """The recurrence with explicit Python loops, in float64, from the paper's equations."""
    batch, dim, length = u.shape
    state = A.shape[1]
    u, delta, A, B, C = (t.detach().double() for t in (u, delta, A, B, C))

    def matrix_entry(M, b, d, n, t):
        if M.dim() == 2:
            return M[d, n].item()
        if M.dim() == 3:
            return M[b, n, t].item()
        per_group = dim // M.shape[1]
        return M[b, d // per_group, n, t].item()

    y = torch.zeros(batch, dim, length, dtype=torch.float64)
    last = torch.zeros(batch, dim, state, dtype=torch.float64)
    for b in range(batch):
        for d in range(dim):
            for n in range(state):
                x = 0.0
                for t in range(length):
                    step = delta[b, d, t].item()
                    if delta_bias is not None:
                        step += delta_bias[d].item()
                    if delta_softplus:
                        step = math.log1p(math.exp(step))
                    x = math.exp(step * A[d, n].item()) * x + step * matrix_entry(B, b, d, n, t) * u[b, d, t].item()
                    y[b, d, t] += matrix_entry(C, b, d, n, t) * x
                last[b, d, n] = x
    for b in range(batch):
        for d in range(dim):
            for t in range(length):
                value = y[b, d, t].item()
                if D is not None:
                    value += D[d].item() * u[b, d, t].item()
                if z is not None:
                    gate = z[b, d, t].item()
                    value *= gate / (1 + math.exp(-gate))
                y[b, d, t] = value
    return y, last


# ------------------------------------------------------------------ selective_scan


@pytest.mark.parametrize("kind", ["fixed", "variable", "grouped"])
@pytest.mark.parametrize("extras", [False, True])
def test_sequential_matches_float64_loops(kind, extras):
    inputs = make_inputs(batch=2, dim=4, length=5, state=3, kind=kind, groups=2)
    if not extras:
        inputs.update(D=None, z=None, delta_bias=None)
        inputs["delta"] = inputs["delta"].abs()  # positive steps without softplus
    y, last = selective_scan(**inputs, delta_softplus=extras, return_last_state=True)
    want_y, want_last = loop_reference(**inputs, delta_softplus=extras)
    assert y.dtype == torch.float32 and last.shape == (2, 4, 3)
    torch.testing.assert_close(y.double(), want_y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(last.double(), want_last, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("length", [1, 2, 7, 33, 64])
@pytest.mark.parametrize("kind", ["fixed", "variable", "grouped"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"D": True},
        {"z": True, "delta_softplus": True},
        {"D": True, "z": True, "delta_bias": True, "delta_softplus": True},
    ],
    ids=["plain", "D", "z+softplus", "all"],
)
def test_fast_methods_match_sequential(method, length, kind, options):
    inputs = make_inputs(batch=2, dim=6, length=length, state=5, kind=kind, groups=3, seed=length)
    for name in ("D", "z", "delta_bias"):
        if not options.get(name):
            inputs[name] = None
    softplus = options.get("delta_softplus", False)
    if not softplus:
        inputs["delta"] = inputs["delta"].abs()
    want_y, want_last = selective_scan(**inputs, delta_softplus=softplus, return_last_state=True)
    inputs = to_device(inputs, method)
    y, last = selective_scan(**inputs, delta_softplus=softplus, return_last_state=True, method=method)
    torch.testing.assert_close(y.cpu(), want_y, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(last.cpu(), want_last, rtol=1e-4, atol=1e-5)
    # Without return_last_state only y comes back.
    only_y = selective_scan(**inputs, delta_softplus=softplus, method=method)
    assert isinstance(only_y, torch.Tensor)
    torch.testing.assert_close(only_y.cpu(), want_y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["fixed", "variable", "grouped"])
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 16, 100])
def test_chunked_any_chunk_size(chunk_size, kind):
    # 37 steps: padded last chunks, and blocks of steps cut short inside a chunk
    inputs = make_inputs(batch=2, dim=6, length=37, state=4, kind=kind, groups=3)
    want = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    got = selective_scan(**inputs, delta_softplus=True, return_last_state=True, method="chunked", chunk_size=chunk_size)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("method", FAST)
@pytest.mark.parametrize("kind", ["fixed", "variable", "grouped"])
def test_gradients_match_sequential(method, kind):
    def grads(method):
        inputs = make_inputs(batch=2, dim=4, length=11, state=3, kind=kind, groups=2, seed=3, requires_grad=True)
        # gradients flow back through .to() into the CPU leaves
        y, last = selective_scan(**to_device(inputs, method), delta_softplus=True, return_last_state=True, method=method)
        weights = torch.linspace(-1, 1, y.numel(), device=y.device).view_as(y)  # weighs every output differently
        ((y * weights).sum() + last.square().sum()).backward()
        return {name: inputs[name].grad for name in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")}

    want, got = grads("sequential"), grads(method)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-5, msg=lambda m, n=name: f"grad {n}: {m}")


def test_gradient_of_sequential_matches_finite_differences():
    # The scan computes in float32 whatever comes in, so use a large step and loose tolerances.
    inputs = make_inputs(batch=1, dim=2, length=4, state=2, kind="variable")
    inputs = {name: t.double().requires_grad_(True) for name, t in inputs.items()}
    names = list(inputs)

    def fn(*tensors):
        return selective_scan(**dict(zip(names, tensors)), delta_softplus=True)

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()), eps=1e-3, atol=2e-3, rtol=1e-2)


def test_low_precision_input_computes_in_float32():
    inputs = make_inputs(length=8)
    half = dict(inputs, u=inputs["u"].bfloat16())
    y, last = selective_scan(**half, delta_softplus=True, return_last_state=True)
    want = selective_scan(**dict(inputs, u=inputs["u"].bfloat16().float()), delta_softplus=True)
    assert y.dtype == torch.bfloat16 and last.dtype == torch.float32
    torch.testing.assert_close(y.float(), want, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("kind", ["variable", "grouped"])
def test_step_by_step_equals_whole_sequence(kind):
    inputs = make_inputs(batch=2, dim=6, length=10, state=3, kind=kind, groups=3)
    want_y, want_last = selective_scan(**inputs, delta_softplus=True, return_last_state=True)
    state = torch.zeros(2, 6, 3)
    before = state.clone()
    ys = []
    for t in range(10):
        y_t, new_state = selective_scan_step(
            state,
            inputs["u"][..., t],
            inputs["delta"][..., t],
            inputs["A"],
            inputs["B"][..., t],
            inputs["C"][..., t],
            D=inputs["D"],
            z_t=inputs["z"][..., t],
            delta_bias=inputs["delta_bias"],
            delta_softplus=True,
        )
        if t == 0:
            assert torch.equal(state, before), "selective_scan_step must not modify its input state"
        state = new_state
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, dim=-1), want_y, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state, want_last, rtol=1e-5, atol=1e-6)


def test_step_with_time_invariant_matrices_as_one_group_per_channel():
    inputs = make_inputs(batch=2, dim=4, length=6, state=3, kind="fixed")
    want = selective_scan(**inputs)
    state, ys = torch.zeros(2, 4, 3), []
    for t in range(6):
        y_t, state = selective_scan_step(
            state,
            inputs["u"][..., t],
            inputs["delta"][..., t],
            inputs["A"],
            inputs["B"].expand(2, 4, 3),
            inputs["C"].expand(2, 4, 3),
            D=inputs["D"],
            z_t=inputs["z"][..., t],
            delta_bias=inputs["delta_bias"],
        )
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, dim=-1), want, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- errors


def test_scan_rejects_bad_inputs():
    good = make_inputs(batch=2, dim=6, length=9, state=4, kind="variable")

    def call(**changes):
        selective_scan(**dict(good, **changes))

    with pytest.raises(ValueError, match="method"):
        selective_scan(**good, method="blelloch")
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan(**good, method="chunked", chunk_size=0)
    with pytest.raises(ValueError, match="delta must have u's shape"):
        call(delta=torch.rand(2, 6, 8))
    with pytest.raises(ValueError, match="u must be"):
        call(u=torch.rand(6, 9), delta=torch.rand(6, 9))
    with pytest.raises(ValueError, match="A must be"):
        call(A=torch.rand(5, 4))
    with pytest.raises(ValueError, match="B must have shape"):
        call(B=torch.rand(2, 3, 9))  # state size 3, A says 4
    with pytest.raises(ValueError, match="C must have shape"):
        call(C=torch.rand(2, 4, 8))  # length 8, u says 9
    with pytest.raises(ValueError, match="groups, which must divide dim"):
        call(B=torch.rand(2, 4, 4, 9))  # 4 groups do not divide dim 6
    with pytest.raises(ValueError, match="B must be"):
        call(B=torch.rand(4))
    with pytest.raises(ValueError, match="D must be"):
        call(D=torch.rand(5))
    with pytest.raises(ValueError, match="delta_bias must be"):
        call(delta_bias=torch.rand(6, 1))
    with pytest.raises(ValueError, match="z must have"):
        call(z=torch.rand(2, 6, 8))
    with pytest.raises(TypeError, match="u must be a floating-point"):
        call(u=torch.ones(2, 6, 9, dtype=torch.int64))
    with pytest.raises(TypeError, match="A must be real"):
        call(A=torch.rand(6, 4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="B must be a torch.Tensor"):
        call(B=[[1.0]])


def test_step_rejects_bad_inputs():
    state = torch.zeros(2, 6, 4)
    args = dict(u_t=torch.rand(2, 6), delta_t=torch.rand(2, 6), A=-torch.rand(6, 4), B_t=torch.rand(2, 4), C_t=torch.rand(2, 4))
    with pytest.raises(ValueError, match="state must have shape"):
        selective_scan_step(torch.zeros(2, 6, 3), **args)
    with pytest.raises(ValueError, match="state must be"):
        selective_scan_step(torch.zeros(6, 4), **args)
    with pytest.raises(ValueError, match="u_t must be"):
        selective_scan_step(state, **dict(args, u_t=torch.rand(2, 6, 1)))
    with pytest.raises(ValueError, match="B_t must be"):
        selective_scan_step(state, **dict(args, B_t=torch.rand(4)))
    with pytest.raises(ValueError, match="groups, which must divide dim"):
        selective_scan_step(state, **dict(args, C_t=torch.rand(2, 4, 4)))
    with pytest.raises(ValueError, match="delta must have"):
        selective_scan_step(state, **dict(args, delta_t=torch.rand(2, 5)))


def test_triton_rejects_wrong_device_and_huge_state():
    good = make_inputs(batch=1, dim=2, length=3, state=2, kind="variable")
    if torch.cuda.is_available():  # natively the kernel wants CUDA tensors; CPU ones are wrong
        wrong = good
    else:  # the interpreter wants CPU tensors; "meta" ones are wrong
        wrong = {name: tensor.to("meta") for name, tensor in good.items()}
    with pytest.raises(ValueError, match="must be a (cpu|cuda) tensor"):
        selective_scan(**wrong, method="triton")
    huge = make_inputs(batch=1, dim=2, length=2, state=300, kind="variable")
    if torch.cuda.is_available():
        huge = {name: tensor.cuda() for name, tensor in huge.items()}
    with pytest.raises(ValueError, match="state must be <= 256"):
        selective_scan(**huge, method="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["fixed", "variable", "grouped"])
def test_triton_on_gpu_long_sequence(kind):
    inputs = make_inputs(batch=2, dim=96, length=1000, state=16, kind=kind, groups=4)
    inputs = {name: tensor.cuda() for name, tensor in inputs.items()}
    want = selective_scan(**inputs, delta_softplus=True, return_last_state=True, method="chunked")
    got = selective_scan(**inputs, delta_softplus=True, return_last_state=True, method="triton")
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------- the block


def test_block_initialisation_follows_the_paper():
    torch.manual_seed(0)
    block = MambaBlock(d_model=32, d_state=8, expand=2)
    assert block.d_inner == 64 and block.dt_rank == 2  # ceil(32 / 16)
    torch.testing.assert_close(block.A, -torch.arange(1.0, 9.0).repeat(64, 1))
    torch.testing.assert_close(block.D.detach(), torch.ones(64))
    dt = F.softplus(block.dt_proj.bias.detach())  # softplus undoes the inverse-softplus bias
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4), (dt.min(), dt.max())
    # log-uniform: log dt spreads over [log 0.001, log 0.1], mean near the middle
    assert abs(dt.log().mean().item() - (math.log(0.001) + math.log(0.1)) / 2) < 0.6


@pytest.mark.parametrize("method", METHODS)
def test_block_stepping_equals_full_forward(method):
    torch.manual_seed(0)
    block = MambaBlock(d_model=8, d_state=4, d_conv=3, scan_method=method).to(device_for(method))
    hidden = torch.randn(2, 9, 8).to(device_for(method))
    full = block(hidden)
    state, outs = block.initial_state(2), []
    for t in range(9):
        out, state = block.step(hidden[:, t], state)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs, dim=1), full, rtol=1e-4, atol=1e-5)


def test_block_is_causal():
    torch.manual_seed(0)
    block = MambaBlock(d_model=8, d_state=4)
    hidden = torch.randn(1, 12, 8)
    changed = hidden.clone()
    changed[:, 7:] += 1.0
    before, after = block(hidden), block(changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])
    assert not torch.allclose(before[:, 7:], after[:, 7:])


def test_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match="d_state"):
        MambaBlock(8, d_state=0)
    with pytest.raises(ValueError, match="dt_min"):
        MambaBlock(8, dt_min=0.5, dt_max=0.1)
    with pytest.raises(ValueError, match="scan_method"):
        MambaBlock(8, scan_method="fft")
    block = MambaBlock(8, d_state=4)
    with pytest.raises(ValueError, match="hidden must be"):
        block(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="hidden must be"):
        block.step(torch.randn(2, 1, 8), block.initial_state(2))
    with pytest.raises(ValueError, match="conv_state"):
        block.step(torch.randn(2, 8), block.initial_state(3))


# ---------------------------------------------------------------------------- the LM


@pytest.mark.parametrize("norm", ["rms", "layer"])
def test_lm_shapes_tied_head_and_stepping(norm):
    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=11, d_model=16, n_layer=2, d_state=4, norm=norm))
    assert model.lm_head.weight is model.embedding.weight
    ids = torch.randint(0, 11, (2, 7))
    logits = model(ids)
    assert logits.shape == (2, 7, 11)
    states, stepped = None, []
    for t in range(7):
        step_logits, states = model.step(ids[:, t], states)
        stepped.append(step_logits)
    torch.testing.assert_close(torch.stack(stepped, dim=1), logits, rtol=1e-4, atol=1e-5)


def test_lm_learns_a_repeated_pattern():
    torch.manual_seed(0)
    model = MambaLM(MambaConfig(vocab_size=8, d_model=16, n_layer=2, d_state=8, scan_method="parallel"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    pattern = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 3, 1])
    sequence = pattern.repeat(4)[:33]
    batch = torch.stack([sequence.roll(-shift) for shift in range(4)])
    losses = []
    for _ in range(30):
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, 8), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 1.8, losses[0]  # about log 8 = 2.08 at the start
    assert losses[-1] < 0.4, f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="norm"):
        MambaConfig(vocab_size=8, norm="batch")
    with pytest.raises(ValueError, match="vocab_size"):
        MambaConfig(vocab_size=0)
    model = MambaLM(MambaConfig(vocab_size=8, d_model=8, n_layer=1, d_state=2))
    with pytest.raises(ValueError, match="ids must be"):
        model(torch.rand(2, 3))
    with pytest.raises(ValueError, match="ids must be"):
        model.step(torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="one state per layer"):
        model.step(torch.zeros(2, dtype=torch.long), states=[])


# ------------------------------------------------------------------------ benchmark


def test_benchmark_results_file_was_written_by_its_script():
    import importlib.util
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "benchmarks"))  # the script imports its sibling _harness
    try:
        spec = importlib.util.spec_from_file_location("selective_scan_benchmark", root / "benchmarks" / "selective_scan.py")
        benchmark = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(benchmark)
    finally:
        sys.path.remove(str(root / "benchmarks"))
    results = json.loads((root / benchmark.RESULTS).read_text())
    assert results["command"].startswith("python benchmarks/selective_scan.py"), results["command"]
    assert [point["L"] for point in results["by_length"]] == [256, 1024, 4096, 16384]
    assert all("chunked" in point["seconds"] for point in results["by_length"])
    rendered = benchmark.render(results)
    assert "| 4096 |" in rendered and "sequential / chunked" in rendered, rendered
