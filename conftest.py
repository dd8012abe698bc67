"""Test-suite setup shared by unit tests and executed docs blocks.

pytest-codeblocks items are not ``pytest.Function`` items, so fixtures never reach them;
the ``pytest_runtest_setup`` hook below does, and seeds every item the same way.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

SEED = 0


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist two workers share two cores: one torch thread each.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)
    # Matplotlib must never try to open a window while tests or docs blocks run.
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Several chapters start from the pretrained small GPT. Train it (about a minute, once
    # per machine; later runs load it from the user cache) before any worker starts, so no
    # docs block pays for it and parallel workers never train it twice.
    if config.getoption("codeblocks", default=False) and not os.environ.get("PYTEST_XDIST_WORKER"):
        from dlnotes.common.pretrain import pretrained_gpt

        pretrained_gpt()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Seed Python, NumPy and torch before every test and every docs code block."""
    random.seed(SEED)
    np.random.seed(SEED)
    torch.manual_seed(SEED)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests when CUDA is absent."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip_gpu)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """Say how many documentation code blocks ran, so a green run visibly includes them."""
    counts = {}
    pages = set()
    for outcome in ("passed", "failed", "skipped"):
        reports = [
            report
            for report in terminalreporter.stats.get(outcome, [])
            if report.nodeid.startswith(("docs/", "README.md")) and (report.when == "call" or outcome == "skipped")
        ]
        if reports:
            counts[outcome] = len(reports)
            pages.update(report.nodeid.split("::")[0] for report in reports)
    if counts:
        summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
        terminalreporter.write_sep("-", f"docs code blocks: {summary}, from {len(pages)} pages")
