"""The built site: a strict, offline build, self-contained pages, and a real browser.

The site is built once per module (``--dist loadfile`` keeps this file on one worker).
The browser test drives Debian's Chromium through Playwright for Python
(``executable_path``: Playwright never downloads a browser), blocks and records every
request to another host, and checks what a reader would see: pages load without errors,
math is typeset, code blocks have copy buttons, and search finds a chapter. It skips
when no Chromium is installed, except under ``CI=true``, where it fails instead.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from docs_lint import ROOT, check_site_is_self_contained

ARTIFACTS = ROOT / ".artifacts"
CHAPTER = "algorithms/sliding-window-maximum.html"
LAB = "algorithms/sliding-window-maximum-lab.html"
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


@pytest.fixture(scope="module")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mkdocs build --strict`` into a temporary folder, with every proxy pointing nowhere.

    Any attempt to reach the network through Python's HTTP stack fails fast, so a
    build that passes here needs no network.
    """
    site = tmp_path_factory.mktemp("site")
    dead_proxy = "http://127.0.0.1:9"
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "HTTP_PROXY": dead_proxy,
        "HTTPS_PROXY": dead_proxy,
        "http_proxy": dead_proxy,
        "https_proxy": dead_proxy,
        "NO_PROXY": "",
        "no_proxy": "",
    }
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return site


def test_strict_build_produces_every_page(built_site: Path):
    for page in ("index.html", CHAPTER, LAB, "reference/algorithms.html", "search/search_index.js"):
        assert (built_site / page).is_file(), f"{page} missing from the built site"
    # MathJax is served from the site itself, copied from the installed wheel.
    assert (built_site / "assets" / "mathjax" / "tex-svg-full.js").stat().st_size > 1_000_000


def test_built_pages_load_nothing_from_another_host(built_site: Path):
    problems = check_site_is_self_contained(built_site)
    assert not problems, "\n".join(problems)


def test_lab_page_was_executed_and_has_a_figure(built_site: Path):
    html = (built_site / LAB).read_text(encoding="utf-8")
    assert "data:image/png;base64," in html, "the lab's matplotlib figure is missing"
    assert "all 4 methods agree on 976 windows" in html, "the lab's cells did not run"
    assert 'src=""' not in html and "x-mathjax-config" not in html, "nbconvert's CDN scripts were not stripped"


def test_api_reference_is_generated(built_site: Path):
    html = (built_site / "reference" / "algorithms.html").read_text(encoding="utf-8")
    for name in ("sliding_window_max", "sliding_window_max_torch", "Raises"):
        assert name in html, f"{name} missing from the API reference"


# --- the browser ----------------------------------------------------------------------


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    if executable is None:
        message = "no Chromium found (install Debian's chromium package)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; under CI=true the browser test must run")
        pytest.skip(message)
    sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def served_site(built_site: Path):
    handler = functools.partial(_QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature fixed by the base class
        pass


class _Visit:
    """A browser page that blocks and records requests to other hosts and collects errors."""

    def __init__(self, browser, allowed_hosts: set[str]):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(f"console: {message.text}"))
        self.context.route("**/*", lambda route: self._filter(route, allowed_hosts))

    def _filter(self, route, allowed_hosts: set[str]) -> None:
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in {"data", "blob", "file", "about"} or parsed.hostname in allowed_hosts:
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def open(self, url: str) -> None:
        self.page.goto(url, wait_until="load")
        # MathJax typesets asynchronously; its startup promise settles when it is done.
        self.page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=30_000)
        self.page.evaluate("() => MathJax.startup.promise")

    def assert_clean(self) -> None:
        assert not self.outside, f"requests to other hosts: {self.outside}"
        assert not self.errors, "\n".join(self.errors)

    def assert_math_rendered(self) -> None:
        page = self.page
        assert page.locator(".arithmatex").count() > 0, "the page has no math to check"
        untypeset = page.evaluate("() => [...document.querySelectorAll('.arithmatex')].filter(e => !e.querySelector('mjx-container')).length")
        assert untypeset == 0, f"{untypeset} math elements were not typeset"
        assert page.locator("mjx-merror, .mjx-error, [data-mjx-error]").count() == 0, "MathJax reported a TeX error"
        text = page.locator("article").inner_text()
        assert "$$" not in text and "\\[" not in text and "\\(" not in text, "raw TeX left on the page"

    def search(self, keyword: str) -> list[str]:
        page = self.page
        box = page.locator("input.md-search__input")
        box.click()  # at desktop width the search box sits in the header
        box.press_sequentially(keyword, delay=30)  # typed key by key, as the theme listens for keys
        results = page.locator(".md-search-result__item")
        results.first.wait_for(state="visible", timeout=20_000)
        return results.all_inner_texts()

    def close(self) -> None:
        self.context.close()


@pytest.mark.browser
def test_site_in_a_real_browser(browser, served_site: str):
    ARTIFACTS.mkdir(exist_ok=True)
    visit = _Visit(browser, allowed_hosts={"127.0.0.1"})
    try:
        visit.open(served_site + "index.html")
        assert "dlnotes" in visit.page.title()
        tabs = visit.page.locator(".md-tabs__link").all_inner_texts()
        for part in ("Foundations", "Attention", "Algorithms"):
            assert any(part in tab for tab in tabs), f"navigation tab {part!r} missing: {tabs}"
        visit.page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=False)

        visit.open(served_site + CHAPTER)
        visit.assert_math_rendered()
        copy_buttons = visit.page.locator("button.md-clipboard, button.md-code__button").count()
        assert copy_buttons >= 5, f"expected a copy button on every code block, found {copy_buttons}"
        visit.page.screenshot(path=str(ARTIFACTS / "chapter.png"), full_page=False)

        hits = visit.search("deque")
        assert any("Sliding-window maximum" in hit for hit in hits), f"search for 'deque' missed the chapter: {hits}"
        visit.page.screenshot(path=str(ARTIFACTS / "search.png"), full_page=False)
        visit.assert_clean()
    finally:
        visit.close()
    assert (ARTIFACTS / "chapter.png").stat().st_size > 10_000


@pytest.mark.browser
def test_site_from_the_file_system(browser, built_site: Path):
    """Opened as files (file://): math still renders and search still works offline."""
    visit = _Visit(browser, allowed_hosts=set())
    try:
        visit.open((built_site / CHAPTER).as_uri())
        visit.assert_math_rendered()
        hits = visit.search("monotonic")
        assert any("Sliding-window maximum" in hit for hit in hits), f"file:// search missed the chapter: {hits}"
        visit.assert_clean()
    finally:
        visit.close()


# --- the guards themselves can fail ------------------------------------------------------


def test_strict_build_fails_on_a_broken_link(tmp_path: Path):
    """Guard (d): a page with a dead link makes ``mkdocs build --strict`` fail."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "index.md").write_text("# Home\n\nSee [a missing page](missing.md).\n")
    (tmp_path / "mkdocs.yml").write_text("site_name: sample\nnav:\n  - index.md\n")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode != 0, "a strict build with a broken link must fail"
    assert "missing.md" in result.stdout + result.stderr


@pytest.mark.browser
def test_browser_guard_catches_outside_requests_and_page_errors(browser, tmp_path: Path):
    """Guard (e): a page that loads a script from another host or throws is reported."""
    (tmp_path / "bad.html").write_text(
        "<html><body><script src='https://cdn.example.org/lib.js'></script>"
        "<script>throw new Error('boom')</script></body></html>"
    )
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    visit = _Visit(browser, allowed_hosts={"127.0.0.1"})
    try:
        visit.page.goto(f"http://127.0.0.1:{server.server_address[1]}/bad.html", wait_until="load")
        assert visit.outside == ["https://cdn.example.org/lib.js"]
        with pytest.raises(AssertionError, match="requests to other hosts"):
            visit.assert_clean()
        visit.outside.clear()
        with pytest.raises(AssertionError, match="boom"):
            visit.assert_clean()
    finally:
        visit.close()
        server.shutdown()
        server.server_close()
