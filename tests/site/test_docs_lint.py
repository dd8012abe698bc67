"""The documentation guards pass on the real tree and fire on bad samples."""

import textwrap

import pytest

import docs_lint
from docs_lint import (
    ROOT,
    check_comment_placement,
    check_docs_in_nav,
    check_fence_languages,
    check_headings,
    check_nav_pages_execute,
    executed_python_blocks,
    external_resources,
    markdown_sources,
    nav_pages,
)


def md(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# --- the real tree -----------------------------------------------------------------


@pytest.mark.parametrize("path", markdown_sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_real_fences_and_comments_are_clean(path):
    text = path.read_text(encoding="utf-8")
    problems = check_fence_languages(text, path.name) + check_comment_placement(text, path.name) + check_headings(text, path.name)
    assert not problems, "\n".join(problems)


def test_real_nav_pages_execute_code_and_every_page_is_in_the_nav():
    pages = nav_pages(ROOT / "mkdocs.yml")
    assert "algorithms/sliding-window-maximum.md" in pages
    problems = check_nav_pages_execute(ROOT / "docs", pages) + check_docs_in_nav(ROOT / "docs", pages)
    assert not problems, "\n".join(problems)


def test_lint_cli_reports_clean(capsys):
    assert docs_lint.main() == 0, capsys.readouterr().out


# --- guard (a): fence info strings ---------------------------------------------------


@pytest.mark.parametrize(
    ("fence", "message"),
    [
        ('```python title="x.py"', "only a bare ```python is executed"),
        ("```py", "only a bare ```python is executed"),
        ("```pycon", "only a bare ```python is executed"),
        ("~~~python", "tilde fence"),
        ("```sh", "use ```console"),
        ("```bash", "use ```console"),
        ("```", "is not one of"),
        ("```Python", "is not one of"),
    ],
)
def test_fence_guard_rejects(fence, message):
    closing = "~~~" if fence.startswith("~") else "```"
    problems = check_fence_languages(f"text\n\n{fence}\nprint(1)\n{closing}\n")
    assert len(problems) == 1 and message in problems[0], problems


def test_fence_guard_accepts_allowed_and_ignores_fences_inside_fences():
    text = md(
        """
        ````markdown
        ```py
        this inner fence is content, not a fence
        ```
        ````

        ```python
        x = 1
        ```

        ```console
        $ make test
        ```
        """
    )
    assert check_fence_languages(text) == []


# --- guard (b): comment placement ----------------------------------------------------

GOOD = md(
    """
    ```python
    x = 1
    ```

    <!--pytest-codeblocks:cont-->
    ```python
    print(x)
    ```

    <!--pytest-codeblocks:expected-output-->
    ```text
    1
    ```

    <!--pytest.mark.skipif(True, reason="demo")-->
    ```python
    raise SystemExit
    ```

    ```python
    y = 2
    ```

    <!--pytest-codeblocks:expected-output-->
    ```text
    ```

    <!--pytest-codeblocks:cont-->
    ```python
    print(y)
    ```
    """
)


def test_comment_guard_accepts_correct_placement():
    assert check_comment_placement(GOOD) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a text fence between the blocks would be glued onto the python code
        ("```python\nx = 1\n```\n\n```text\nout\n```\n\n<!--pytest-codeblocks:cont-->\n```python\nprint(x)\n```\n", "between two ```python"),
        ("```python\nx = 1\n```\n\n<!--pytest-codeblocks:cont-->\n```text\nout\n```\n", "between two ```python"),
        ("Some prose.\n\n<!--pytest-codeblocks:cont-->\n\n```python\nx = 1\n```\n", "between two ```python"),
        ("<!--pytest.mark.skip-->\n```text\nout\n```\n\n```python\nx = 1\n```\n", "directly above a ```python"),
        ("<!--pytest.mark.skip-->\n\nprose in between\n\n```python\nx = 1\n```\n", "directly above a ```python"),
        ("```text\nx\n```\n\n<!--pytest-codeblocks:expected-output-->\n```text\nx\n```\n", "must follow a ```python"),
        ("```python\nx = 1\n```\n\n<!--pytest-codeblocks:skip-->\n```python\nx\n```\n", "unknown or deprecated"),
    ],
)
def test_comment_guard_rejects(text, message):
    problems = check_comment_placement(text)
    assert len(problems) == 1 and message in problems[0], problems


# --- guard (c): every nav page runs code ---------------------------------------------


def test_nav_guard_rejects_page_without_executed_block(tmp_path):
    (tmp_path / "prose.md").write_text("# Only prose\n\n```text\nnothing runs\n```\n")
    (tmp_path / "skipped.md").write_text('# Skipped\n\n<!--pytest.mark.skipif(True, reason="gpu")-->\n```python\nx = 1\n```\n')
    (tmp_path / "good.md").write_text("# Good\n\n```python\nx = 1\n```\n")
    problems = check_nav_pages_execute(tmp_path, ["good.md", "prose.md", "skipped.md", "missing.md", "reference/api.md", "x-lab.py"])
    assert [problem.split(":")[0] for problem in problems] == ["prose.md", "skipped.md", "missing.md"], problems


def test_executed_block_count_ignores_skipped_and_other_languages():
    assert executed_python_blocks(GOOD) == 4


def test_docs_not_in_nav_are_reported(tmp_path):
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "orphan.md").write_text("# Orphan\n")
    (tmp_path / "part" / "demo-lab.py").write_text("# %%\n")
    (tmp_path / "index.md").write_text("# Home\n")
    problems = check_docs_in_nav(tmp_path, ["index.md"])
    assert problems == ["part/demo-lab.py: not in the mkdocs nav", "part/orphan.md: not in the mkdocs nav"]


# --- guard (d), second half: no other host -------------------------------------------


def test_external_resource_detection():
    html = md(
        """
        <script src="assets/mathjax/tex-svg-full.js"></script>
        <script src="https://cdn.example.org/lib.js"></script>
        <link rel="stylesheet" href="//fonts.example.com/css">
        <img src="figure.png" srcset="a.png 1x, https://img.example.net/b.png 2x">
        <a href="https://arxiv.org/abs/1234.5678">a link a reader may follow</a>
        <div style="background: url('https://example.com/bg.png')"></div>
        <style>@import "https://example.com/x.css"; .x { background: url(local.png) }</style>
        <script type="module">const m = await import("https://cdn.example.org/m.mjs"); import("./local.mjs")</script>
        """
    )
    assert external_resources(html) == [
        "https://cdn.example.org/lib.js",
        "//fonts.example.com/css",
        "https://img.example.net/b.png",
        "https://example.com/bg.png",
        "https://example.com/x.css",
        "https://cdn.example.org/m.mjs",
    ]


def test_heading_guard():
    text = "# Title\n\n## Cost: $O(n)$\n\n```python\n# a comment with $math$ is fine\n```\n\n### Plain O(n)\n"
    problems = check_headings(text)
    assert len(problems) == 1 and ":3:" in problems[0], problems


def test_docstrings_use_an_examples_section():
    """mkdocstrings reads "Example:" as an admonition of plain Markdown, not as code.

    Its ``>>>`` lines then render as prose and brackets such as ``x[-1]`` turn into broken
    cross-references; "Examples:" renders them as code.
    """
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "src").rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if line.strip() == "Example:"
    ]
    assert not offenders, f"use 'Examples:' in docstrings: {offenders}"
