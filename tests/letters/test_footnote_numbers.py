"""Footnote markers: the author's numbers kept, named notes numbered around them, any label."""

from __future__ import annotations

import re

import pytest

from campaign.letters.markdown import render_body


def _markers(html: str) -> list[str]:
    return re.findall(r'id="fnref[^"]*">\[([^\]]*)\]</a></sup>', html)


def _values(html: str) -> list[str]:
    return re.findall(r'class="footnote-item" value="([^"]*)"', html)


def test_a_named_note_takes_a_number_the_author_has_not_used() -> None:
    body = render_body("A[^2] and B[^note].\n\n[^2]: two\n\n[^note]: named\n", {})
    # [^2] keeps its 2; the named note follows it as 3 — never a second 2 (review 2).
    assert "A[2] and B[3]." in body.text
    assert body.text.endswith("----\n[2] two\n[3] named\n")
    assert _markers(body.html) == ["2", "3"]
    assert _values(body.html) == ["2", "3"]


def test_named_and_inline_notes_skip_every_number_used_anywhere() -> None:
    source = (
        "A[^x] B[^1] C^[inline] D[^y] E[^3].\n\n[^x]: ex\n\n[^1]: one\n\n[^y]: why\n\n[^3]: three\n"
    )
    body = render_body(source, {})
    # 1 and 3 are the author's; x, the inline note and y take 4, 5, 6 in reading order,
    # and the notes are listed in number order (review 2).
    assert "A[4] B[1] C[5] D[6] E[3]." in body.text
    assert _markers(body.html) == ["4", "1", "5", "6", "3"]
    assert _values(body.html) == ["1", "3", "4", "5", "6"]


@pytest.mark.parametrize(
    "label", ["²", "³", "٣", "१", "0", "00", "-1", "1.5", "1e3", "Ⅳ", "99999999999999999999999"]
)
def test_any_label_renders_with_one_number_in_both_parts(label: str) -> None:
    body = render_body(f"See[^{label}] and[^1].\n\n[^{label}]: note\n\n[^1]: one\n", {})
    text_marker = re.search(r"See\[([^\]]*)\]", body.text)
    assert text_marker is not None
    number = text_marker.group(1)
    # An ASCII number of the author's, or the first one free: never a repeat, never odd digits.
    assert number.isascii() and number.isdecimal() and int(number) > 0
    assert _markers(body.html) == [number, "1"]
    assert _values(body.html) == ["1", number]  # listed in number order
    assert number != "1"
