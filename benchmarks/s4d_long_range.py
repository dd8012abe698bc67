"""S4D and S4 against an LSTM of the same size on a long-range memory task: delayed recall.

The input is white noise ``u_t ~ N(0, 1)`` and the target is the input ``d`` steps ago,
``y_t = u_{t-d}`` (scored for ``t >= d``). Predicting 0 scores a mean squared error of 1;
getting it right needs the last ``d`` inputs in memory. Every model sees one scalar per
step: S4D is ``Linear(1, H) -> S4DLayer(H, N) -> Linear(H, 1)``, S4 the same with the
original DPLR layer (``S4Layer``, HiPPO-LegS, a fourth more parameters); the LSTM is
``LSTM(1, h) -> Linear(h, 1)`` with the largest ``h`` whose parameter count does not
exceed the S4D model's. Same data, same steps, Adam with a one-cycle schedule; the LSTM
gets the better of two learning rates. Seeded and single-threaded: deterministic.

Prints a Markdown table (test MSE per delay) and writes
``docs/ssm/results/s4d_long_range.json``, which the chapter renders.

Run: ``python benchmarks/s4d_long_range.py [--quick]`` (one to two minutes on one core).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from _harness import machine, markdown_table, write_results
from dlnotes.ssm.dplr import S4Layer
from dlnotes.ssm.s4 import S4DLayer

RESULTS = "docs/ssm/results/s4d_long_range.json"
CONFIG = {
    "length": 256,
    "delays": [16, 64, 128],
    "d_model": 16,
    "d_state": 64,
    "steps": 400,
    "batch": 16,
    "s4d_lr": 1e-2,
    "lstm_lrs": [1e-2, 3e-3],
    "test_batch": 64,
    "seed": 0,
}


class S4DRegressor(nn.Module):
    """Scalar sequence in, scalar sequence out, through one S4D layer (``init="s4"``: S4's DPLR layer)."""

    def __init__(self, d_model: int, d_state: int, init: str, length: int = 256) -> None:
        super().__init__()
        self.encoder = nn.Linear(1, d_model)
        if init == "s4":
            self.layer = S4Layer(d_model, d_state=d_state, l_max=length)
        else:
            self.layer = S4DLayer(d_model, d_state=d_state, init=init)
        self.decoder = nn.Linear(d_model, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # (batch, L) -> (batch, L)
        return self.decoder(self.layer(self.encoder(u.unsqueeze(-1)))).squeeze(-1)


class LSTMRegressor(nn.Module):
    """Scalar sequence in, scalar sequence out, through one LSTM layer."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.decoder = nn.Linear(hidden, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.lstm(u.unsqueeze(-1))[0]).squeeze(-1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matching_lstm_width(budget: int) -> int:
    """The largest LSTM hidden size whose regressor has at most ``budget`` parameters."""
    hidden = 1
    while parameter_count(LSTMRegressor(hidden + 1)) <= budget:
        hidden += 1
    return hidden


def delay_loss(model: nn.Module, u: torch.Tensor, delay: int) -> torch.Tensor:
    """Mean squared error of predicting u_{t-d} at every t >= d."""
    return (model(u)[:, delay:] - u[:, :-delay]).pow(2).mean()


def train(model: nn.Module, delay: int, lr: float, config: dict) -> dict:
    """Train on fresh noise every step; return the test MSE and the wall time."""
    data = torch.Generator().manual_seed(config["seed"])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=config["steps"])
    start = time.perf_counter()
    for _ in range(config["steps"]):
        loss = delay_loss(model, torch.randn(config["batch"], config["length"], generator=data), delay)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    test = torch.randn(config["test_batch"], config["length"], generator=torch.Generator().manual_seed(12345))
    with torch.no_grad():
        mse = delay_loss(model, test, delay).item()
    return {"test_mse": mse, "seconds": seconds, "lr": lr}


def run(config: dict) -> dict:
    torch.manual_seed(config["seed"])
    s4d_parameters = parameter_count(S4DRegressor(config["d_model"], config["d_state"], "inv"))
    hidden = matching_lstm_width(s4d_parameters)
    rows = []
    for delay in config["delays"]:
        row = {"delay": delay}
        for init in ("inv", "lin"):
            torch.manual_seed(config["seed"])
            model = S4DRegressor(config["d_model"], config["d_state"], init)
            row[f"s4d_{init}"] = train(model, delay, config["s4d_lr"], config)
        torch.manual_seed(config["seed"])
        model = S4DRegressor(config["d_model"], config["d_state"], "s4", config["length"])
        row["s4"] = train(model, delay, config["s4d_lr"], config)
        tries = []
        for lr in config["lstm_lrs"]:
            torch.manual_seed(config["seed"])
            tries.append(train(LSTMRegressor(hidden), delay, lr, config))
        row["lstm"] = min(tries, key=lambda result: result["test_mse"])
        rows.append(row)
        print(f"delay {delay}: " + ", ".join(f"{k} {v['test_mse']:.4f}" for k, v in row.items() if k != "delay"))
    return {
        "config": config,
        "parameters": {
            "s4d": s4d_parameters,
            "s4": parameter_count(S4DRegressor(config["d_model"], config["d_state"], "s4", config["length"])),
            "lstm": parameter_count(LSTMRegressor(hidden)),
            "lstm_hidden": hidden,
        },
        "rows": rows,
    }


def render(results: dict) -> str:
    """The Markdown table the chapter shows, rendered from a results dictionary."""
    config, parameters = results["config"], results["parameters"]
    header = [
        "delay $d$",
        f"S4D-Inv ({parameters['s4d']} params)",
        f"S4D-Lin ({parameters['s4d']} params)",
        f"S4, DPLR LegS ({parameters['s4']} params)",
        f"LSTM, $h = {parameters['lstm_hidden']}$ ({parameters['lstm']} params)",
    ]
    rows = [
        [row["delay"]] + [f"{row[name]['test_mse']:.4f}" for name in ("s4d_inv", "s4d_lin", "s4", "lstm")]
        for row in results["rows"]
    ]
    return "\n".join(
        [
            markdown_table(header, rows),
            "",
            f"Test MSE of recalling $u_{{t-d}}$ from white noise (predicting 0 scores 1.0); "
            f"$L = {config['length']}$, $H = {config['d_model']}$, $N = {config['d_state']}$, "
            f"{config['steps']} Adam steps of batch {config['batch']}; "
            f"the LSTM's best of learning rates {', '.join(str(lr) for lr in config['lstm_lrs'])}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only (a smoke test); writes nothing")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update the results file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = dict(CONFIG, steps=20, delays=[16]) if args.quick else CONFIG
    results = run(config)
    info = machine()
    print(f"\nmachine: {info['cpu']}, torch {info['torch']}, 1 thread\n")
    print(render(results))
    if not args.no_write and not args.quick:
        path = write_results(RESULTS, results)
        print(f"\nwrote {path}; paste the table above into the chapter")


if __name__ == "__main__":
    main()
