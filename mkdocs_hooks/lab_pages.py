"""Make executed notebook ("lab") pages self-contained.

nbconvert's templates, which mkdocs-jupyter renders labs with, add three things the
offline site must not have: an empty ``<script src="">`` where a CDN MathJax 2 URL
would go (it would load the page itself as a script), that MathJax 2 configuration, and
a module script that imports mermaid from a CDN when a page has diagrams. The site
already loads its own MathJax 3 on every page (see ``mathjax.py``), which also typesets
the labs' markdown cells, so all three are removed.
"""

from __future__ import annotations

import re

_NBCONVERT_SCRIPTS = [
    re.compile(r'<!-- Load mathjax -->\s*<script src="[^"]*">\s*</script>', re.S),
    re.compile(r'<!-- MathJax configuration -->\s*<script type="text/x-mathjax-config">.*?</script>\s*<!-- End of mathjax configuration -->', re.S),
    re.compile(r'<script type="module">(?:(?!</script>).)*?cdnjs\.cloudflare\.com/ajax/libs/mermaid.*?</script>', re.S),
]


def strip_nbconvert_scripts(html: str) -> str:
    """Remove nbconvert's MathJax 2 loader and configuration and its CDN mermaid loader."""
    for pattern in _NBCONVERT_SCRIPTS:
        html = pattern.sub("", html)
    return html


def on_post_page(output: str, page, config) -> str:
    if page.file.src_uri.endswith("-lab.py"):
        return strip_nbconvert_scripts(output)
    return output
