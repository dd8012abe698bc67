"""The task results the SSM chapter and its lab show come from benchmarks/ssm_tasks.py.

The comparison stored in ``docs/ssm/results/ssm_tasks.json`` must be the one the chapter
describes: every model on every task, two of them of matching size. (That the chapter
shows the tables the script renders from it is checked with the other chapters' tables
in ``tests/site/test_benchmark_tables.py``.)
"""

import json

import pytest
from benchmark_scripts import load_benchmark
from docs_lint import ROOT


@pytest.fixture(scope="module")
def benchmark():
    return load_benchmark("ssm_tasks.py")


@pytest.fixture(scope="module")
def results(benchmark):
    return json.loads((ROOT / benchmark.RESULTS).read_text())


def test_results_compare_every_model_on_every_task_at_matching_size(benchmark, results):
    assert list(results["tasks"]) == list(benchmark.TASKS)
    for task in results["tasks"]:
        runs = {run["model"]: run for run in results["runs"] if run["task"] == task}
        assert set(runs) == set(benchmark.MODELS), (task, set(runs))
        sizes = [runs[name]["parameters"] for name in benchmark.MATCHED]
        assert max(sizes) <= 1.05 * min(sizes), f"{benchmark.MATCHED} must have matching sizes, got {sizes}"
        for run in runs.values():
            assert run["parameters"] == sum(p.numel() for p in benchmark.build(run["model"]).parameters())
            assert len(run["losses"]) == run["steps"] == results["steps"][task], run["model"]
            assert run["eval_steps"][-1] == run["steps"], run["eval_steps"]
            assert run["eval_accuracy"][-1] == run["accuracy"], run["model"]
