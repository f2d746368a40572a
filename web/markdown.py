"""Lessons: Markdown with math and code, rendered on the server.

Raw HTML in a lesson is escaped, not passed through. Code blocks are highlighted with Pygments;
`$...$` and `$$...$$` become elements the page typesets with KaTeX.
"""

from __future__ import annotations

import functools
import html

from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(cssclass="highlight", nowrap=True)


def _highlight(code: str, language: str, _attrs: str) -> str:
    try:
        lexer = get_lexer_by_name(language or "text")
    except ClassNotFound:
        return html.escape(code)
    return f'<pre class="highlight"><code>{highlight(code, lexer, _FORMATTER)}</code></pre>\n'


@functools.cache
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "linkify": False})
    md.enable("table")
    md.use(dollarmath_plugin, double_inline=True)
    return md


def render(text: str) -> str:
    return _parser().render(text)


def pygments_css() -> str:
    return str(HtmlFormatter(style="default").get_style_defs(".highlight"))
