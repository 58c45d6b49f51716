"""Project instructions: Markdown written by ops, shown to annotators as HTML.

CommonMark plus tables and strikethrough (markdown-it-py). The output is safe to
`mark_safe`: raw HTML in the source is escaped, not passed through, and a link or image
may only point to http(s), mailto or a relative URL (no javascript:, data:, vbscript:,
file: ...); anything else stays as plain text. Links open in a new tab so an annotator
does not lose the task they are on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
# Everything before the first ":" that comes before any "/", "?" or "#" is a scheme to a
# browser; anything that looks like one must be allowed (so "java%09script:" is refused).
_SCHEME_RE = re.compile(r"^([^/?#]*):")


def _link_allowed(url: str) -> bool:
    match = _SCHEME_RE.match(url.strip())
    return match is None or match.group(1).lower() in ALLOWED_SCHEMES


def _link_open(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    if not str(token.attrGet("href") or "").startswith("#"):  # an anchor stays in the page
        token.attrSet("target", "_blank")
        token.attrSet("rel", "noopener noreferrer nofollow")
    return renderer.renderToken(tokens, idx, options, env)


def _build() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.validateLink = _link_allowed  # type: ignore[method-assign]
    md.add_render_rule("link_open", _link_open)
    return md


_MARKDOWN = _build()


def instructions_html(markdown_text: str) -> str:
    """Return the HTML of project instructions, safe to insert into a page as is."""
    if not markdown_text or not markdown_text.strip():
        return ""
    return _MARKDOWN.render(markdown_text)
