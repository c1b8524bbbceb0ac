"""Bulk headers (issue 14, item 7): List-Id, Feedback-ID, and every header folded at 78."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.header import decode_header, make_header

import pytest
from flask import Flask

from campaign.mail import build_message, feedback_id, list_id
from tests.conftest import fresh_sqlite_copy
from tests.test_mail import SENDER, SENT_AT, make_letter


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite only: the headers are built from the letter, never from the database."""
    return fresh_sqlite_copy(request)


LONG_NAME = (
    "Campagne pour la libération immédiate des défenseurs des droits humains détenus "
    "arbitrairement — appel conjoint n° 3 de la société civile européenne"
)
LONG_URL = "https://campaign.example.org/u/" + "Aa0-_" * 30
# A URL of one token longer than a line: it may stand alone on its line, not be broken.
VERY_LONG_URL = "https://campaign.example.org/u/" + "x" * 300


def _header_lines(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def _assert_folded(raw: bytes) -> None:
    for line in _header_lines(raw):
        if len(line) <= 78:
            continue
        # Only a single token that cannot be split may stand longer, alone on its line.
        assert line.startswith(b" ") and b" " not in line[1:], line
        assert len(line) <= 998


def _message(url: str = LONG_URL) -> bytes:
    references = " ".join(f"<{n:04d}.{'f' * 40}@example.org>" for n in range(20))
    return build_message(
        make_letter(subject="Re: " + LONG_NAME),
        sender=SENDER,
        date=SENT_AT,
        message_id="<1.abc@example.org>",
        extra_headers={
            "List-Unsubscribe": f"<{url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": list_id(42, LONG_NAME, SENDER),
            "Feedback-ID": feedback_id(42, "followup", SENDER),
            "In-Reply-To": "<0000.ffff@example.org>",
            "References": references,
        },
        organisation="Org",
        letter_date=dt.date(2026, 3, 8),
    )


def test_every_header_line_is_folded_at_78(app: Flask) -> None:
    raw = _message()
    _assert_folded(raw)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    # Unfolded, each value reads back as written.
    assert str(parsed["List-Unsubscribe"]).strip() == f"<{LONG_URL}>"
    assert len(str(parsed["References"]).split()) == 20
    assert str(parsed["Subject"]) == "Re: " + LONG_NAME


def test_a_url_longer_than_a_line_stands_alone_on_its_line(app: Flask) -> None:
    raw = _message(VERY_LONG_URL)
    _assert_folded(raw)
    lines = _header_lines(raw)
    index = lines.index(b"List-Unsubscribe:")
    assert lines[index + 1] == f" <{VERY_LONG_URL}>".encode()


def test_list_id_names_the_campaign_and_is_stable(app: Flask) -> None:
    raw = _message()
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    value = str(make_header(decode_header(str(parsed["List-Id"]))))
    display, _, identifier = value.rpartition("<")
    assert identifier == "campaign-42.lists.example.org>"
    # An encoded-word phrase (RFC 2047) decodes to the name; the id stays plain ASCII.
    assert " ".join(display.split()).strip('" ') == LONG_NAME
    assert b"<campaign-42.lists.example.org>" in raw
    # The same campaign gets the same id whatever its name becomes.
    assert list_id(42, "Renamed", SENDER).endswith("<campaign-42.lists.example.org>")


def test_feedback_id_carries_campaign_kind_and_sender_and_nothing_personal(app: Flask) -> None:
    value = feedback_id(42, "campaign", SENDER)
    assert value == "42:campaign:example.org"
    assert feedback_id(42, "followup", "Someone <jane.doe@example.net>") == (
        "42:followup:example.net"
    )
    app.config["MESSAGE_ID_DOMAIN"] = "mail.example.org"
    assert feedback_id(7, "campaign", SENDER) == "7:campaign:mail.example.org"
    with pytest.raises(ValueError):
        feedback_id(7, "news:letter", SENDER)
