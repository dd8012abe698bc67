# %% [markdown]
# # Lab: HiPPO memories and S4D kernels
#
# This page is executed when the site is built (under a minute on a laptop CPU). It runs
# the HiPPO recurrences over a signal and reads the history back from the final state,
# shows what LegT forgets and LegS keeps, draws S4D kernels at initialisation, and plots
# the delayed-recall results that `benchmarks/s4d_long_range.py` stored in
# `docs/ssm/results/s4d_long_range.json`.
# Back to the chapter: [HiPPO and S4/S4D](hippo-s4.md).

# %%
import json
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from dlnotes.ssm.hippo import hippo_online, hippo_reconstruct
from dlnotes.ssm.s4 import S4DLayer


def signal_at(t: torch.Tensor) -> torch.Tensor:
    """A smooth test signal with a chirp, so that late parts are harder than early ones."""
    return torch.sin(6 * t) + 0.5 * torch.cos(15 * t**2)


L, THETA = 2000, 0.25
t = torch.arange(1, L + 1, dtype=torch.float64) / L  # samples on (0, 1]
signal = signal_at(t)
x = torch.linspace(0, 1, 500, dtype=torch.float64)  # positions in the window, 1 = now

# %% [markdown]
# ## Reading the history back from the final state
#
# After the last sample, LegS holds an approximation of the whole signal on $[0, 1]$ and
# LegT one of the last $\theta = 0.25$ time units. Each curve is
# $\sum_n c_n g_n$ for the final coefficients $c$; the dashed line is the signal.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, measure in zip(axes, ("legs", "legt")):
    times = x if measure == "legs" else 1 - THETA * (1 - x)
    ax.plot(times, signal_at(times), "k--", lw=2, label="signal")
    for N in (4, 8, 16):
        c = hippo_online(signal, N, measure, theta=THETA)[-1]
        ax.plot(times, hippo_reconstruct(c, x, measure), label=f"N = {N}")
    ax.set(title=f"HiPPO-{measure[:3].capitalize()}{measure[3:].upper()}: history from the final state", xlabel="t")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Error against the memory size N
#
# RMS reconstruction error on each measure's window, for the three discretisations. The
# error falls fast with $N$ until it meets the floor of the discretisation: forward Euler
# has the highest floor, bilinear and ZOH sit together.

# %%
Ns = [2, 4, 6, 8, 12, 16, 24, 32]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, measure in zip(axes, ("legs", "legt")):
    times = x if measure == "legs" else 1 - THETA * (1 - x)
    truth = signal_at(times)
    for method in ("euler", "bilinear", "zoh"):
        errors = []
        for N in Ns:
            c = hippo_online(signal, N, measure, theta=THETA, method=method)[-1]
            errors.append((hippo_reconstruct(c, x, measure) - truth).pow(2).mean().sqrt().item())
        ax.semilogy(Ns, errors, "o-", label=method)
    ax.set(title=measure, xlabel="N", ylabel="RMS error")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## What LegT forgets and LegS keeps
#
# Add a bump early in the signal (around $t = 0.15$) and look at the state at $t = 1$.
# LegT's window $[0.75, 1]$ no longer contains it, so its final state barely changes;
# LegS still holds a blurred copy, because its measure covers the whole past.

# %%
bump = signal + 2.0 * torch.exp(-(((t - 0.15) / 0.03) ** 2))
N = 16
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for ax, measure in zip(axes, ("legs", "legt")):
    times = x if measure == "legs" else 1 - THETA * (1 - x)
    for name, f in (("without bump", signal), ("with bump", bump)):
        c = hippo_online(f, N, measure, theta=THETA)[-1]
        ax.plot(times, hippo_reconstruct(c, x, measure), label=name)
    ax.set(title=f"{measure}, N = {N}: reconstruction at t = 1", xlabel="t")
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## S4D initialisations: spectra and kernels
#
# Left: the frequencies $\omega_n = \operatorname{Im} a_n$ of the $N/2 = 32$ modes. S4D-Lin
# spaces them evenly ($\pi n$); S4D-Inv follows the eigenvalues of the normal part of
# HiPPO-LegS (S4D-LegS, dashed) closely.
#
# Right: kernels with $B = C = 1$ and $\Delta = 0.01$. Lin's modes are a damped Fourier
# series with period $2/\Delta = 200$ steps, so its kernel is a train of pulses at lags
# $0, 200, 400, \dots$; giving $C$ the phases $C_n = e^{-i\pi n \Delta d}$ moves the pulse
# to lag $d$ (here $d = 120$, echoed every 200 steps). That is why S4D-Lin is so good at delayed recall. Inv's
# kernel has no such structure: a spread of slow, long-lived components, the kind of
# memory HiPPO-LegS provides.

# %%
from dlnotes.ssm.hippo import hippo_legs
from dlnotes.ssm.s4 import s4d_init, s4d_kernel

A_legs, B_legs = hippo_legs(64)
legs = torch.linalg.eigvals(A_legs + 0.5 * torch.outer(B_legs, B_legs)).imag
legs = legs[legs > 0].sort(descending=True).values
modes = torch.arange(32)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
left.semilogy(modes[1:], s4d_init(64, "lin").imag[1:], "o-", ms=3, label="S4D-Lin")  # ω_0 = 0 off the log axis
left.semilogy(modes, s4d_init(64, "inv").imag, "o-", ms=3, label="S4D-Inv")
left.semilogy(modes, legs, "k--", label="S4D-LegS (exact)")
left.set(xlabel="mode n", ylabel="frequency ω_n", title="imaginary parts of a_n, N = 64")
left.legend(fontsize=8)
dt, delay = 0.01, 120
step = torch.tensor([dt], dtype=torch.float64)
for init, C, label in (
    ("lin", None, "S4D-Lin, C = 1"),
    ("lin", torch.exp(-1j * torch.pi * modes * dt * delay), f"S4D-Lin, C phased to d = {delay}"),
    ("inv", None, "S4D-Inv, C = 1"),
):
    A = s4d_init(64, init).to(torch.complex128)[None]
    C = torch.ones_like(A) if C is None else C.to(torch.complex128)[None]
    kernel = s4d_kernel(A, torch.ones_like(A), C, step, 700)[0]
    right.plot(kernel / kernel.abs().max(), lw=1, label=label)
right.set(xlabel="lag j", ylabel="kernel (scaled to max 1)", title=f"kernels, Δ = {dt}")
right.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Delayed recall: S4D and S4 against an LSTM of the same size
#
# Test MSE of predicting $u_{t-d}$ from white noise (0 would score 1.0), from the results
# file. Regenerate it with `python benchmarks/s4d_long_range.py` (one to two minutes).

# %%
# The build runs this page from the repository root; a reader may run it from docs/ssm/.
results_file = next(path for path in (Path("docs/ssm/results"), Path("results")) if path.is_dir()) / "s4d_long_range.json"
results = json.loads(results_file.read_text())
print("measured with:", results["command"])
print("machine:", results["machine"]["cpu"], "| torch", results["machine"]["torch"])
print("parameters:", results["parameters"])
delays = [row["delay"] for row in results["rows"]]
names = {"s4d_inv": "S4D-Inv", "s4d_lin": "S4D-Lin", "s4": "S4 (DPLR LegS)", "lstm": "LSTM"}
fig, ax = plt.subplots(figsize=(6, 3.8))
width = 0.2
for i, (key, label) in enumerate(names.items()):
    ax.bar([j + (i - 1.5) * width for j in range(len(delays))], [row[key]["test_mse"] for row in results["rows"]],
           width, label=label)
ax.set_xticks(range(len(delays)), [f"d = {d}" for d in delays])
ax.set_yscale("log")
ax.set(ylabel="test MSE (log scale)", title="delayed recall of white noise")
ax.axhline(1.0, color="k", ls="--", lw=1)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## A live run
#
# A shorter version of the experiment, trained while the page builds: one S4D-Lin layer
# learns a 32-step delay on sequences of length 128 in 150 steps (a few seconds).

# %%
torch.manual_seed(0)
encoder, layer, decoder = torch.nn.Linear(1, 8), S4DLayer(8, d_state=32, init="lin"), torch.nn.Linear(8, 1)
parameters = [*encoder.parameters(), *layer.parameters(), *decoder.parameters()]
optimizer = torch.optim.Adam(parameters, lr=1e-2)
data = torch.Generator().manual_seed(0)
delay, losses = 32, []
for step in range(150):
    u = torch.randn(16, 128, generator=data)
    prediction = decoder(layer(encoder(u.unsqueeze(-1)))).squeeze(-1)
    loss = (prediction[:, delay:] - u[:, :-delay]).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
print(f"training MSE: first step {losses[0]:.3f}, last 10 steps {sum(losses[-10:]) / 10:.3f}")
fig, ax = plt.subplots(figsize=(6, 3.4))
ax.semilogy(losses)
ax.set(xlabel="step", ylabel="training MSE", title=f"S4D-Lin, delay {delay}")
fig.tight_layout()
plt.show()
