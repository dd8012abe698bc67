"""The benchmark harness's results files: GPU numbers survive a CPU-only rerun."""

import json

from benchmark_scripts import load_benchmark


def test_cpu_rerun_keeps_gpu_results_and_gpu_run_keeps_cpu_results(tmp_path):
    harness = load_benchmark("_harness.py")
    target = tmp_path / "results.json"  # absolute: ROOT / target is target itself
    harness.write_results(target, {"cpu": {"points": [1]}})
    harness.write_cuda_results(target, {"gpu": "Some GPU", "points": [2]})
    after_gpu = json.loads(target.read_text())
    assert after_gpu["cpu"] == {"points": [1]}, "a --cuda-only run must keep the CPU numbers"
    assert after_gpu["cuda"]["gpu"] == "Some GPU" and after_gpu["cuda"]["points"] == [2]
    assert {"command", "machine"} <= set(after_gpu["cuda"]), "the GPU part records its own machine"
    harness.write_results(target, {"cpu": {"points": [3]}})
    after_cpu = json.loads(target.read_text())
    assert after_cpu["cpu"] == {"points": [3]}
    assert after_cpu["cuda"] == after_gpu["cuda"], "a CPU-only rerun must keep the GPU numbers"
    harness.write_results(target, {"cpu": {"points": [4]}, "cuda": {"gpu": "Other GPU"}})
    assert json.loads(target.read_text())["cuda"] == {"gpu": "Other GPU"}, "new GPU numbers replace old ones"
