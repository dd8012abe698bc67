"""Every chapter Cost table listed here is exactly what its benchmark script renders from the
results file it wrote: rerunning a benchmark and forgetting to paste its output fails here."""

import json

import pytest

from benchmark_scripts import load_benchmark
from docs_lint import ROOT

# benchmark script -> the chapter that shows its table
TABLES = {
    "sliding_window.py": "docs/algorithms/sliding-window-maximum.md",
    "efficientnet_table.py": "docs/vision/efficientnet.md",
    "peft_comparison.py": "docs/finetune/lora.md",
    "medusa.py": "docs/decoding/medusa.md",
    "selective_scan.py": "docs/ssm/hippo-s4-mamba.md",
    "ssm_tasks.py": "docs/ssm/hippo-s4-mamba.md",
    "s4d_long_range.py": "docs/ssm/hippo-s4.md",
    "thundernet.py": "docs/vision/thundernet.md",
    # these two chapters show several tables: the scripts define render_tables (CPU, then GPU)
    "flash_attention.py": "docs/attention/flash-attention.md",
    "linear_attention.py": "docs/attention/linear-attention.md",
}


@pytest.mark.parametrize(("script", "chapter"), TABLES.items())
def test_chapter_shows_what_the_script_rendered(script, chapter):
    benchmark = load_benchmark(script)
    results = json.loads((ROOT / benchmark.RESULTS).read_text())
    assert results["command"].startswith(f"python benchmarks/{script}"), results["command"]
    assert {"cpu", "torch"} <= set(results["machine"])
    if hasattr(benchmark, "render_tables"):
        tables = benchmark.render_tables(results)
        assert len(tables) == (2 if "cuda" in results else 1)
    else:
        tables = [benchmark.render(results)]
    text = (ROOT / chapter).read_text()
    for rendered in tables:
        assert rendered in text, (
            f"the Cost section of {chapter} must show the table benchmarks/{script} renders from "
            f"{benchmark.RESULTS}; rerun the script and paste its output:\n{rendered}"
        )
