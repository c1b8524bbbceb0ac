"""Hostile and broken messages are read within limits, flagged, and never raise."""

from __future__ import annotations

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.inbound.parsing import MAX_BYTES, MAX_PARTS, MAX_REFERENCES, parse_message
from campaign.services.replies.intake import record_inbound

HEAD = b"From: Someone <someone@example.org>\r\nSubject: Hello\r\nMessage-ID: <m.1@example.org>\r\n"


def _nested(depth: int) -> bytes:
    opening = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n)
        for n in range(depth)
    )
    closing = b"".join(b"\r\n--b%d--" % n for n in reversed(range(depth)))
    return HEAD + opening + b"Content-Type: text/plain\r\n\r\ninnermost" + closing + b"\r\n"


def _many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % n for n in range(count)
    )
    return HEAD + b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n' + parts + b"--B--\r\n"


def test_five_thousand_parts_are_read_up_to_the_cap_and_flagged() -> None:
    parsed = parse_message(_many_parts(5000))

    assert f"too many parts: only the first {MAX_PARTS} read" in parsed.problems
    assert parsed.subject == "Hello"
    assert "part 0" in parsed.text
    assert "part 4999" not in parsed.text


def test_nesting_150_deep_keeps_the_headers_and_flags_the_depth() -> None:
    parsed = parse_message(_nested(150))

    assert any(problem.startswith("nested deeper than") for problem in parsed.problems)
    assert parsed.message_id == "<m.1@example.org>"
    assert "innermost" not in parsed.text


def test_a_message_over_the_size_limit_keeps_its_headers_only() -> None:
    raw = HEAD + b"\r\n" + b"x" * (MAX_BYTES + 1)

    parsed = parse_message(raw)

    assert parsed.problems[-1].startswith("larger than 25 MB")
    assert (parsed.subject, parsed.text, parsed.raw_size) == ("Hello", "", len(raw))


def test_ten_thousand_references_keep_the_most_recent_ones() -> None:
    ids = b" ".join(b"<r%d@example.org>" % n for n in range(10_000))
    parsed = parse_message(HEAD + b"References: " + ids + b"\r\n\r\nHi\r\n")

    assert len(parsed.references) == MAX_REFERENCES
    assert parsed.references[-1] == "<r9999@example.org>"
    assert any(problem.startswith("References cut") for problem in parsed.problems)


@pytest.mark.parametrize(
    ("raw", "problem", "text"),
    [
        (
            HEAD + b"Content-Type: text/plain; charset=x-klingon\r\n\r\nqapla\xff\r\n",
            "unknown charset",
            "qapla\ufffd",
        ),
        (
            HEAD + b"Content-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29y!!!bGQ=x\r\n",
            "broken base64",
            "Hello world",
        ),
        (HEAD + b"Date: the day after tomorrow\r\n\r\nHi\r\n", "Date is not a date", "Hi"),
        (b"From: someone@example.org\r\nSubject: x\r\n\r\nHi\r\n", "no Message-ID", "Hi"),
        (b"", "empty message", ""),
    ],
    ids=["unknown charset", "broken base64", "bad date", "no message-id", "empty"],
)
def test_broken_messages_are_flagged_and_read_as_far_as_possible(
    raw: bytes, problem: str, text: str
) -> None:
    parsed = parse_message(raw)

    assert problem in parsed.problems
    assert parsed.text.strip() == text


def test_raw_8bit_headers_are_read_as_utf8_and_flagged() -> None:
    raw = "From: Jürgen Groß <j@example.de>\r\nSubject: Grüße\r\n\r\nHi\r\n".encode()

    parsed = parse_message(raw)

    assert parsed.subject == "Grüße"
    assert parsed.from_address == "j@example.de"
    assert "raw 8-bit header" in parsed.problems


BAD = {
    "5000 parts": _many_parts(5000),
    "150 deep": _nested(150),
    "empty": b"",
    "binary junk": b"\x00\xff\xfe" * 1000,
    "broken header": b"From: <<<@@@>>>\r\nContent-Type: multipart/mixed\r\n"
    b"Subject: =?utf-8?q?broken\r\n\r\n--\r\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_stored_as_unmatched_with_its_problems(app: Flask, name: str) -> None:
    result = record_inbound(BAD[name])
    db.session.commit()

    assert result.message.id is not None
    assert result.message.kind == "unmatched"
    assert result.message.problems
