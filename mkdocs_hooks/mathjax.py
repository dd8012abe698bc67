"""Serve MathJax from the site itself.

The MathJax 3 ``es5`` build comes from the ``django-static-mathjax`` wheel (a package
registry, installed with the ``docs`` extra); nothing third-party is committed. After
each build it is copied to ``site/assets/mathjax/``, where ``mkdocs.yml`` loads
``tex-svg-full.js`` (SVG output: no web fonts to fetch, which also works over file://).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

TARGET = Path("assets") / "mathjax"


def mathjax_source() -> Path:
    """Folder holding the MathJax ``es5`` build inside the installed wheel."""
    try:
        root = resources.files("mathjax")
    except ModuleNotFoundError as error:  # pragma: no cover - a setup problem
        raise RuntimeError(
            "MathJax is missing: install the docs extra (pip install -e '.[docs]'), "
            "which brings the django-static-mathjax wheel"
        ) from error
    source = Path(str(root)) / "static" / "mathjax" / "es5"
    if not (source / "tex-svg-full.js").is_file():  # pragma: no cover - a setup problem
        raise RuntimeError(f"MathJax build not found at {source}")
    return source


def on_post_build(config, **kwargs) -> None:
    target = Path(config["site_dir"]) / TARGET
    if target.exists():
        shutil.rmtree(target)
    # The speech-rule maps (sre/) are only needed by the accessibility explorer.
    shutil.copytree(mathjax_source(), target, ignore=shutil.ignore_patterns("sre"))
