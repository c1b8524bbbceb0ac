"""A dash pair in a paragraph never becomes a signature separator line on the wire."""

from __future__ import annotations

import pytest

from campaign.letters.flowed import flow
from tests.letters.test_flowed import rfc3676_decode

DETENTIONS = (
    "Please read the report our coalition published this week on detentions -- "
    "https://example.org/reports/2026/12/arbitrary-detention-of-human-rights-defenders"
)


@pytest.mark.parametrize(
    "paragraph",
    [
        DETENTIONS,
        "a" * 70 + " -- " + "b" * 71,
        "a" * 66 + " -- " + "b" * 71,
        ("word " * 13) + "-- " + ("word " * 20) + "end",
        "-- " + "x" * 80,  # the paragraph opens with the dashes
        "x" * 69 + " --",  # and ends with them
        "> " + ("quoted " * 9) + "-- " + "y" * 70,  # at a quote depth
    ],
)
def test_no_soft_line_ends_with_dashes_and_every_reader_rejoins_the_paragraph(
    paragraph: str,
) -> None:
    wrapped = flow(paragraph)
    lines = wrapped.split("\n")
    for line in lines:
        content = line.lstrip(">")
        content = content[1:] if content.startswith(" ") else content
        # "-- " alone is the signature separator: readers cut the letter there.
        assert content.rstrip(" ") != "--", lines
        if content.endswith(" "):
            assert not content.rstrip(" ").endswith(" --"), lines
    expected = paragraph if not paragraph.startswith("> ") else ">" + paragraph[2:]
    assert rfc3676_decode(wrapped) == [expected]


def test_a_real_signature_separator_is_still_kept() -> None:
    assert flow("Text.\n-- \nHuman Rights Network").split("\n") == [
        "Text.",
        "-- ",
        "Human Rights Network",
    ]


def test_a_paragraph_opening_with_an_escaped_quote_mark_is_not_a_quote_on_the_wire() -> None:
    from campaign.letters.markdown import render_body

    paragraph = "> is how the report marks its own quotes, " + "word " * 14 + "end."
    body = render_body("\\" + paragraph + "\n\n> A real quote.\n", {})
    wrapped = flow(body.text)
    lines = wrapped.split("\n")
    # Space-stuffed: a reader shows ">" as typed, at quote depth 0, in one paragraph.
    assert lines[0].startswith(" > is how")
    assert all(len(line) <= 72 for line in lines)
    decoded = rfc3676_decode(wrapped)
    assert decoded[0] == paragraph
    assert ">A real quote." in decoded
