"""dlnotes._triton: interpreter selection and a small masked kernel against torch."""

import os

import pytest
import torch

from dlnotes._triton import INTERPRET, default_device, tl, triton


@triton.jit
def _masked_add_kernel(x_ptr, y_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n  # the last block hangs over the end of the vector
    x = tl.load(x_ptr + offsets, mask=mask)
    y = tl.load(y_ptr + offsets, mask=mask)
    tl.store(out_ptr + offsets, x + y, mask=mask)


def test_interpreter_flag_follows_cuda():
    assert INTERPRET == (not torch.cuda.is_available())
    assert INTERPRET == (os.environ.get("TRITON_INTERPRET") == "1")
    assert default_device().type == ("cpu" if INTERPRET else "cuda")


@pytest.mark.parametrize("n", [1, 100, 257, 1000])
def test_masked_vector_add_matches_torch(n):
    device = default_device()
    generator = torch.Generator().manual_seed(n)
    x = torch.randn(n, generator=generator).to(device)
    y = torch.randn(n, generator=generator).to(device)
    # A sentinel past the end would be overwritten if masking failed.
    out = torch.full((n + 64,), 12345.0, device=device)
    block = 128
    _masked_add_kernel[(triton.cdiv(n, block),)](x, y, out, n, BLOCK=block)
    torch.testing.assert_close(out[:n], x + y)
    assert torch.all(out[n:] == 12345.0), "the kernel wrote past the end of its mask"


@pytest.mark.gpu
def test_kernel_runs_natively_on_cuda():
    assert not INTERPRET
    x = torch.randn(5000, device="cuda")
    out = torch.empty_like(x)
    _masked_add_kernel[(triton.cdiv(5000, 1024),)](x, x, out, 5000, BLOCK=1024)
    torch.testing.assert_close(out, 2 * x)


def run_fresh(code):
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=environment)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_training_before_the_first_kernel_keeps_the_interpreter():
    # torch.optim.AdamW imports triton; importing dlnotes first must still pick the interpreter
    done = run_fresh(
        "import dlnotes, torch\n"
        "torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])\n"
        "from dlnotes._triton import tl\n"
        "assert type(tl.max).__name__ == 'InterpretedFunction'\n"
        "from dlnotes.attention.flash_triton import flash_attention\n"
        "q = torch.randn(1, 1, 16, 16)\n"
        "out = flash_attention(q, q, q)\n"
        "ref = torch.nn.functional.scaled_dot_product_attention(q, q, q)\n"
        "torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the interpreter is chosen only without CUDA")
def test_triton_imported_too_early_gives_a_clear_error():
    done = run_fresh(
        "import torch\n"
        "torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))])\n"
        "import dlnotes._triton\n"
    )
    assert done.returncode != 0
    assert "Triton was imported before TRITON_INTERPRET=1 was set" in done.stderr, done.stderr[-2000:]
