"""The chapter's Cost tables are exactly what benchmarks/sliding_window.py renders from its results file."""

import importlib.util
import json
import sys

from docs_lint import ROOT


def load_benchmark():
    sys.path.insert(0, str(ROOT / "benchmarks"))  # the script imports its sibling _harness
    try:
        spec = importlib.util.spec_from_file_location("sliding_window_benchmark", ROOT / "benchmarks" / "sliding_window.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_results_file_was_written_by_the_script_and_the_chapter_shows_it():
    benchmark = load_benchmark()
    results = json.loads((ROOT / benchmark.RESULTS).read_text())
    assert results["command"].startswith("python benchmarks/sliding_window.py"), results["command"]
    assert {"cpu", "torch"} <= set(results["machine"])
    chapter = (ROOT / "docs" / "algorithms" / "sliding-window-maximum.md").read_text()
    rendered = benchmark.render(results)
    assert rendered in chapter, (
        "the Cost section must show the tables benchmarks/sliding_window.py renders from "
        f"{benchmark.RESULTS}; rerun the script and paste its output:\n{rendered}"
    )
