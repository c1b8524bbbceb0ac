"""The text part as format=flowed (RFC 3676) wrapped at 72: read back by a flowed decoder
written here from the RFC (not campaign's own), and line lengths checked on the wire."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage

import pytest

from campaign.letters.flowed import flow
from campaign.letters.markdown import render_body
from campaign.letters.types import RenderedLetter
from campaign.mail import build_message, letter_parts

SENT_AT = dt.datetime(2026, 12, 10, 9, 0, tzinfo=dt.UTC)
URL = "https://example.org/reports/" + "a" * 1972  # 2,000 characters
PARAGRAPH = (
    "We write to you about Article 5[1] of the Criminal Code, which has been used to "
    "imprison more than forty human rights defenders in the last year alone; their "
    "lawyers were disbarred (see https://example.org/reports/2026/defenders-in-detention)."
)


def rfc3676_decode(text: str, delsp: bool = False) -> list[str]:
    """RFC 3676 section 4.1-4.5: (quote depth, logical line) joined across soft breaks."""
    out: list[str] = []
    buffer: str | None = None
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        line = line[depth:]
        if line.startswith(" "):  # space-stuffed (or the space after quote marks)
            line = line[1:]
        soft = line.endswith(" ") and line != "-- "
        if soft and delsp:
            line = line[:-1]
        buffer = line if buffer is None else buffer + line
        if not soft:
            out.append(">" * depth + buffer)
            buffer = None
    if buffer is not None:
        out.append(buffer)
    return out


def _letter(text_body: str, language: str = "en") -> RenderedLetter:
    return RenderedLetter(
        statement_id=1,
        statement_version=1,
        contact_id=1,
        language=language,
        to_name="Jane Doe",
        to_address="jane@example.net",
        cc_addresses=(),
        subject="Appeal",
        html_body="<p>x</p>\n",
        text_body=text_body,
        salutation="Dear Ambassador,",
        closing="Yours sincerely,",
        address_block=("H.E. Jane Doe",),
        signatory_lines=("Human Rights Network",),
        problems=(),
        signatories_in_body=True,
        letter_date=SENT_AT.date(),
    )


def _text_part(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return part


def _paragraphs(text: str) -> list[str]:
    return [line.rstrip(" ") for line in text.split("\n")]


def test_a_paragraph_is_wrapped_at_72_with_soft_breaks_and_rejoins_exactly() -> None:
    wrapped = flow(PARAGRAPH)
    lines = wrapped.split("\n")
    assert len(lines) >= 3
    assert all(len(line) <= 72 for line in lines)
    assert all(line.endswith(" ") for line in lines[:-1])  # soft breaks
    assert not lines[-1].endswith(" ")
    assert "5[1]" in wrapped  # the marker stays with its word
    assert "https://example.org/reports/2026/defenders-in-detention)." in wrapped
    assert rfc3676_decode(wrapped) == [PARAGRAPH]


def test_space_stuffing_signature_separator_and_quotes() -> None:
    text = "From the start of the year\n indented\n> quoted " + PARAGRAPH
    text += "\n-- \nHuman Rights Network"
    wrapped = flow(text)
    lines = wrapped.split("\n")
    assert lines[0] == " From the start of the year"
    assert lines[1] == "  indented"
    assert all(line.startswith("> ") for line in lines[2:-2])
    assert lines[-2:] == ["-- ", "Human Rights Network"]
    assert rfc3676_decode(wrapped) == [
        "From the start of the year",
        " indented",
        ">quoted " + PARAGRAPH,
        "-- ",
        "Human Rights Network",
    ]


def test_lists_and_footnotes_keep_a_hanging_indent_on_fixed_lines() -> None:
    text = f"- {PARAGRAPH}\n12. {PARAGRAPH}\n\n----\n[3] {PARAGRAPH}"
    wrapped = flow(text)
    decoded = rfc3676_decode(wrapped)
    for marker in ("- ", "12. ", "[3] "):
        start = decoded.index(next(line for line in decoded if line.startswith(marker)))
        item = [decoded[start]]
        for line in decoded[start + 1 :]:
            if not line.startswith(" " * len(marker)):
                break
            item.append(line)
        # Every continuation sits under the text, and the words are all there in order.
        assert len(item) > 1 and all(len(line) <= 72 for line in item)
        assert " ".join(line.strip() for line in item) == marker + PARAGRAPH


def test_a_2000_character_url_stays_whole_on_its_own_line() -> None:
    text = f"The full report is at {URL} and in the annex."
    wrapped = flow(text)
    assert URL + " " in wrapped.split("\n")
    assert rfc3676_decode(wrapped) == [text]


@pytest.mark.parametrize("eight_bit", [True, False])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_sent_text_part_is_flowed_and_every_encoding_keeps_the_soft_breaks(
    eight_bit: bool, language: str
) -> None:
    paragraph = (
        PARAGRAPH
        if language == "en"
        else (
            "Мы обращаемся к Вам в связи со статьёй 5[1] Уголовного кодекса, которая "
            "применялась для заключения под стражу более сорока правозащитников."
        )
    )
    body = render_body(
        f"{paragraph}\n\nSee {URL}.\n\n- {paragraph}\n\n[^1]: {paragraph}\n", {}, lang=language
    ).text
    letter = _letter(body, language)
    data = build_message(letter, sender="Org <org@example.org>", date=SENT_AT, eight_bit=eight_bit)
    part = _text_part(data)
    assert part.get_content_type() == "text/plain"
    assert part.get_param("format") == "flowed"
    assert part.get_param("delsp") == "no"
    assert part.get_content_charset() == "utf-8"
    if not eight_bit:
        assert part["Content-Transfer-Encoding"] in {"quoted-printable", "base64"}
    content = part.get_content().replace("\r\n", "\n")
    for line in content.split("\n"):
        # No line over 78 (72 here) but a lone unbreakable token (the 2,000-character URL).
        assert len(line) <= 72 or " " not in line.strip(), line
        if language == "en":
            assert len(line.encode()) <= 78 or " " not in line.strip(), line
    assert any(line.endswith(" ") for line in content.split("\n"))  # soft breaks survived
    expected = letter_parts(letter, organisation="Org").text
    decoded = rfc3676_decode(content)
    # Paragraphs come back whole; list items and notes as fixed lines: the same words.
    assert paragraph in decoded and f"See {URL}." in decoded
    assert re.findall(r"\S+", "\n".join(decoded)) == re.findall(r"\S+", expected)
    assert [line for line in decoded if line in _paragraphs(expected)] == [
        line for line in _paragraphs(expected) if line in decoded
    ]


def test_a_text_part_read_back_without_a_flowed_decoder_still_reads_well() -> None:
    # A terminal client that ignores format=flowed: short lines, words whole.
    wrapped = flow(f"{PARAGRAPH}\n\n- {PARAGRAPH}")
    words = re.findall(r"\S+", wrapped)
    assert words == re.findall(r"\S+", f"{PARAGRAPH} - {PARAGRAPH}")
    assert max(map(len, wrapped.split("\n"))) <= 72
