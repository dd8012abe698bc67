"""Load a script from ``benchmarks/`` as a module (tests check its results files and tables)."""

import importlib.util
import sys
from types import ModuleType

from docs_lint import ROOT


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>`` (e.g. ``"medusa.py"``) without running its ``main``."""
    folder = str(ROOT / "benchmarks")
    sys.path.insert(0, folder)  # the scripts import their sibling _harness
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name.removesuffix('.py')}", ROOT / "benchmarks" / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(folder)
