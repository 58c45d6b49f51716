"""labeling.markdown: instructions render as Markdown, never as live HTML or scripts."""

from __future__ import annotations

import pytest

from labeling.markdown import instructions_html


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("", ""),
        ("   \n", ""),
        (
            "# Boxes\n\nDraw **tight** boxes.",
            "<h1>Boxes</h1>\n<p>Draw <strong>tight</strong> boxes.</p>\n",
        ),
        ("- car\n- bus", "<ul>\n<li>car</li>\n<li>bus</li>\n</ul>\n"),
        ("~~old~~", "<p><s>old</s></p>\n"),
        ("| a |\n|---|\n| 1 |", "<td>1</td>"),
        ("![ex](/static/example.png)", '<img src="/static/example.png" alt="ex" />'),
        (
            "[guide](https://example.org/guide)",
            '<a href="https://example.org/guide" target="_blank" rel="noopener noreferrer nofollow">guide</a>',
        ),
        ("[mail](mailto:ops@example.org)", 'href="mailto:ops@example.org"'),
        ("[top](#top)", '<a href="#top">top</a>'),
    ],
)
def test_markdown_renders(source: str, expected: str) -> None:
    assert expected in instructions_html(source)


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        '<img src="x" onerror="alert(1)">',
        "<a href='javascript:alert(1)'>x</a>",
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](&#106;avascript:alert(1))",
        "[x](java%09script:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](file:///etc/passwd)",
        "![x](data:image/png;base64,AAAA)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<javascript:alert(1)>",
    ],
)
def test_no_live_html_or_script_links(source: str) -> None:
    html = instructions_html(source).lower()
    assert "<script" not in html and "<img" not in html and "<a " not in html


def test_a_title_cannot_add_an_attribute() -> None:
    html = instructions_html('[x](https://example.org "a\\" onmouseover=\\"alert(1)")')
    assert 'title="a&quot; onmouseover=&quot;alert(1)"' in html
