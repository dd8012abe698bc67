"""Guards that keep the documentation honest.

pytest-codeblocks 0.18 fails silently in several ways, so these checks catch what it
would let through:

* it collects only fences whose info string is exactly ``python``, ``sh`` or ``bash``; any
  other spelling (``python title="x"``, ``py``, ``~~~python``, ``pycon``) is never run;
* it *executes* ``sh``/``bash`` fences, so commands meant for readers must use ``console``;
* ``<!--pytest-codeblocks:cont-->`` glues the next fence of *any* language onto the
  previous fence of any language, and a mark comment attaches to the next fence of any
  language, so a ``text`` fence in between silently swallows them.

Each ``check_*`` function returns a list of human-readable problems (empty when clean),
so the tests can show that every guard fires on a bad sample.
Run ``python tests/docs_lint.py`` for a report on the real tree.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent

#: Info strings a fence may carry. Only ``python`` is executed.
ALLOWED_INFO = frozenset(
    {"python", "text", "console", "toml", "yaml", "json", "ini", "cfg", "diff", "html", "css", "javascript", "markdown", "csv"}
)

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<marker>`{3,}|~{3,})(?P<info>.*)$")
_CODEBLOCKS_COMMENT = re.compile(r"^<!--[-\s]*pytest-codeblocks:(?P<keyword>.*?)[-\s]*-->$")
_MARK_COMMENT = re.compile(r"^<!--[-\s]*(?P<mark>pytest\.mark\..*?)[-\s]*-->$")
_KNOWN_KEYWORDS = {"cont", "expected-output", "expected-output-ignore-whitespace", "skipfile"}


@dataclass(frozen=True)
class Fence:
    """One fenced block: where it opens and closes, and its info string."""

    start: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    marker: str
    info: str


def parse_fences(text: str) -> list[Fence]:
    """All fenced blocks of a Markdown text, in order (an unclosed fence runs to the end)."""
    fences = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        marker, info = match["marker"], match["info"].strip()
        end = i + 1
        while end < len(lines) and not lines[end].lstrip().startswith(marker):
            end += 1
        fences.append(Fence(i + 1, min(end, len(lines) - 1) + 1, marker, info))
        i = end + 1
    return fences


def check_fence_languages(text: str, name: str = "<text>") -> list[str]:
    """Guard (a): every fence uses backticks and an allowed info string; none is sh/bash."""
    problems = []
    for fence in parse_fences(text):
        where = f"{name}:{fence.start}"
        if fence.marker.startswith("~"):
            problems.append(f"{where}: tilde fence {fence.marker}{fence.info!r}; pytest-codeblocks only reads ``` fences")
        elif fence.info in {"sh", "bash", "shell", "zsh"}:
            problems.append(f"{where}: ```{fence.info} fences are executed by pytest-codeblocks; use ```console for commands")
        elif fence.info not in ALLOWED_INFO:
            hint = " (only a bare ```python is executed)" if "py" in fence.info else ""
            problems.append(f"{where}: info string {fence.info!r} is not one of {sorted(ALLOWED_INFO)}{hint}")
    return problems


def check_comment_placement(text: str, name: str = "<text>") -> list[str]:
    """Guard (b): codeblocks and mark comments sit directly next to a ``python`` fence.

    * ``cont`` must follow a python fence (or that fence's expected-output fence) and
      precede a python fence (only blank lines between);
    * a ``pytest.mark.*`` comment must directly precede a python fence;
    * ``expected-output`` must directly follow a python fence and precede a fence.
    """
    lines = text.splitlines()
    fences = parse_fences(text)
    inside = {line for fence in fences for line in range(fence.start, fence.end + 1)}
    by_start = {fence.start: fence for fence in fences}
    by_end = {fence.end: fence for fence in fences}

    def neighbour(line: int, step: int) -> int | None:
        """1-based number of the nearest non-blank line before (step=-1) or after (step=1)."""
        j = line + step
        while 1 <= j <= len(lines) and not lines[j - 1].strip():
            j += step
        return j if 1 <= j <= len(lines) else None

    def opens_python(line: int | None) -> bool:
        return line in by_start and by_start[line].info == "python"

    def closes_python(line: int | None) -> bool:
        return line in by_end and by_end[line].info == "python"

    def is_expected_output(fence: Fence) -> bool:
        before_fence = neighbour(fence.start, -1)
        return before_fence is not None and bool(
            (match := _CODEBLOCKS_COMMENT.match(lines[before_fence - 1].strip()))
            and match["keyword"].startswith("expected-output")
        )

    def closes_python_or_its_output(line: int | None) -> bool:
        # pytest-codeblocks does not count an expected-output fence as a block, so
        # `cont` after "python block, expected-output, text block" continues the python block.
        return closes_python(line) or (line in by_end and is_expected_output(by_end[line]))

    problems = []
    for number, raw in enumerate(lines, start=1):
        if number in inside:
            continue
        stripped = raw.strip()
        codeblocks = _CODEBLOCKS_COMMENT.match(stripped)
        mark = _MARK_COMMENT.match(stripped)
        where = f"{name}:{number}"
        before, after = neighbour(number, -1), neighbour(number, 1)
        if codeblocks:
            keyword = codeblocks["keyword"]
            if keyword == "cont":
                if not closes_python_or_its_output(before) or not opens_python(after):
                    problems.append(
                        f"{where}: <!--pytest-codeblocks:cont--> must sit between two ```python fences "
                        "(or after a python block's expected-output fence)"
                    )
            elif keyword.startswith("expected-output"):
                if not closes_python(before) or after not in by_start:
                    problems.append(f"{where}: {keyword} must follow a ```python fence and precede its output fence")
            elif keyword not in _KNOWN_KEYWORDS:
                problems.append(f"{where}: unknown or deprecated pytest-codeblocks keyword {keyword!r}")
        elif mark:
            if not opens_python(after):
                problems.append(f"{where}: mark comment {mark['mark']!r} must sit directly above a ```python fence")
    return problems


def check_headings(text: str, name: str = "<text>") -> list[str]:
    """Headings carry no TeX: the table of contents and search results would show it raw."""
    inside = {line for fence in parse_fences(text) for line in range(fence.start, fence.end + 1)}
    return [
        f"{name}:{number}: heading contains math ({line.strip()!r}); write it in words or plain text"
        for number, line in enumerate(text.splitlines(), start=1)
        if number not in inside and re.match(r"^#{1,6}\s", line) and ("$" in line or "\\(" in line)
    ]


def executed_python_blocks(text: str) -> int:
    """Number of ``python`` fences that run unconditionally (no skip mark above them)."""
    lines = text.splitlines()
    count = 0
    for fence in parse_fences(text):
        if fence.info != "python":
            continue
        j = fence.start - 1
        while j >= 1 and not lines[j - 1].strip():
            j -= 1
        skipped = j >= 1 and _MARK_COMMENT.match(lines[j - 1].strip()) and "skip" in lines[j - 1]
        count += not skipped
    return count


def nav_pages(mkdocs_yml: Path) -> list[str]:
    """Every page path listed in the ``nav`` of an mkdocs configuration."""
    config = yaml.safe_load(mkdocs_yml.read_text())
    pages: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, str):
            pages.append(node)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            for child in node.values():
                walk(child)

    walk(config.get("nav", []))
    return [page for page in pages if "://" not in page]


def check_nav_pages_execute(docs_dir: Path, pages: list[str]) -> list[str]:
    """Guard (c): every nav page except the API reference and labs runs a python block."""
    problems = []
    for page in pages:
        if page.startswith("reference/") or page.endswith("-lab.py"):
            continue
        path = docs_dir / page
        if not path.is_file():
            problems.append(f"{page}: listed in the nav but missing")
        elif executed_python_blocks(path.read_text(encoding="utf-8")) == 0:
            problems.append(f"{page}: no executed ```python block (every chapter must run something)")
    return problems


def check_docs_in_nav(docs_dir: Path, pages: list[str]) -> list[str]:
    """Every Markdown page and lab under ``docs/`` is reachable from the nav."""
    listed = set(pages)
    candidates = sorted([*docs_dir.rglob("*.md"), *docs_dir.rglob("*-lab.py")])
    return [
        f"{path.relative_to(docs_dir).as_posix()}: not in the mkdocs nav"
        for path in candidates
        if path.relative_to(docs_dir).as_posix() not in listed
    ]


class _ResourceCollector(HTMLParser):
    """Collects URLs a browser would *fetch* (not plain links a reader may click)."""

    FETCHING = {"script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "source": ("src", "srcset"),
                "video": ("src", "poster"), "audio": ("src",), "embed": ("src",), "object": ("data",)}

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for attribute in self.FETCHING.get(tag, ()):
            if values.get(attribute):
                self.urls.extend(part.strip().split(" ")[0] for part in values[attribute].split(","))
        if tag == "link" and values.get("href") and values.get("rel", "") not in {"canonical", "alternate"}:
            self.urls.append(values["href"])
        if values.get("style"):
            self.urls.extend(re.findall(r"url\(['\"]?([^'\")]+)", values["style"]))
        self._in_style = tag == "style"
        self._in_script = tag == "script" and not values.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script:  # dynamic imports and worker imports inside inline scripts
            self.urls.extend(re.findall(r"""(?:import\(|importScripts\(|\bfrom\s)\s*['"]((?:https?:)?//[^'"]+)""", data))
        if self._in_style:
            self.urls.extend(re.findall(r"url\(['\"]?([^'\")]+)", data))
            self.urls.extend(re.findall(r"@import\s+['\"]([^'\"]+)", data))

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False
        if tag == "script":
            self._in_script = False


def external_resources(html: str) -> list[str]:
    """URLs on another host (or protocol-relative) that the page would load."""
    collector = _ResourceCollector()
    collector.feed(html)
    return [url for url in collector.urls if url.startswith("//") or urlparse(url).scheme in {"http", "https"}]


def check_site_is_self_contained(site_dir: Path) -> list[str]:
    """Guard (d), second half: no built page loads anything from another host."""
    problems = []
    for page in sorted(site_dir.rglob("*.html")):
        for url in external_resources(page.read_text(encoding="utf-8")):
            problems.append(f"{page.relative_to(site_dir).as_posix()}: loads {url}")
    for sheet in sorted(site_dir.rglob("*.css")):
        for url in re.findall(r"url\(['\"]?((?:https?:)?//[^'\")]+)", sheet.read_text(encoding="utf-8", errors="replace")):
            problems.append(f"{sheet.relative_to(site_dir).as_posix()}: loads {url}")
    return problems


def markdown_sources(root: Path = ROOT) -> list[Path]:
    """The Markdown files whose fences pytest-codeblocks reads: docs/ and README.md."""
    return sorted((root / "docs").rglob("*.md")) + [root / "README.md"]


def main() -> int:
    problems = []
    for path in markdown_sources():
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT).as_posix()
        problems += check_fence_languages(text, name) + check_comment_placement(text, name) + check_headings(text, name)
    pages = nav_pages(ROOT / "mkdocs.yml")
    problems += check_nav_pages_execute(ROOT / "docs", pages) + check_docs_in_nav(ROOT / "docs", pages)
    print("\n".join(problems) or "docs are clean")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
