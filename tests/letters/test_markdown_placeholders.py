"""Bodies converted once with placeholders read exactly as bodies converted per recipient."""

from __future__ import annotations

import pytest

from campaign.letters.markdown import markdown_to_html, markdown_to_text, render_body
from campaign.letters.sandbox import render

TEMPLATES = [
    "Dear {{ v }},\n\nWe write to you.",
    "*{{ v }}* and **{{ v }}** and _{{ v }}_",
    "a*{{ v }}*b and x**{{ v }}**y",
    "- {{ v }}\n- second {{ v }}\n\n1. {{ v }}",
    "> {{ v }} said\n> more",
    "# Dear {{ v }}\n\nText",
    "Dear {{ v }}\n===\n\nText",
    "See [{{ v }}](https://example.org) now.",
    "See [the page](https://example.org/{{ v }}) now.",
    "Write to <https://example.org/{{ v }}>.",
    "Text[^1] for {{ v }}.\n\n[^1]: Footnote about {{ v }}.",
    "Inline `{{ v }}` code.",
    "    indented {{ v }}\n\nafter",
    "```\n{{ v }}\n```",
    "{{ v }}{{ v }} twice in a row, and {{ v }}[^1]\n\n[^1]: x",
    "{{ v }}",
]
VALUES = [
    "Smith",
    "O'Brien",
    "*bold*",
    '<b>x</b> & "quotes"',
    "José Núñez",
    "«Имя»",
    "Ms. Dupont,",
    ".leading",
    "[link](javascript:alert(1))",
    "`code`",
    "back\\slash",
    "1. item",
    "# heading",
    "a_b_c",
    "_x_",
    "",
    "two\nlines",
    "fake \ue000\ue100\ue001 marker",
    "tab\there",
]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("value", VALUES)
def test_a_placeholder_body_reads_like_one_converted_whole(template: str, value: str) -> None:
    merged = render(template, {"v": value}, html=False, markdown=True)
    body = render_body(template, {"v": value})
    assert body.html == markdown_to_html(merged)
    assert body.text == markdown_to_text(merged)


def test_letters_that_differ_only_in_names_share_one_conversion() -> None:
    from campaign.letters import markdown

    template = "Dear {{ v }},\n\nOur *joint* letter.[^1]\n\n[^1]: A note."
    markdown._convert.cache_clear()
    for name in ("Smith", "Dupont", "Ivanova", "Karimov"):
        assert f"Dear {name}," in render_body(template, {"v": name}).text
    assert markdown._convert.cache_info().misses == 1
