"""What is kept of an inbound message: the original bytes, its HTML as received, its attachments."""

from __future__ import annotations

import base64

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.inbound.parsing import MAX_BYTES, MAX_FILENAME, MAX_HTML, parse_message
from campaign.models import InboundMessage
from campaign.services.replies.intake import raw_message_of, record_inbound
from tests.inbound.helpers import CORPUS, corpus, sent_campaign

HEAD = b"From: Ana Lima <ana@example.org>\r\nSubject: Hello\r\nMessage-ID: <m.1@example.org>\r\n"


def _reloaded(record: InboundMessage) -> InboundMessage:
    """The row as another request would read it, not the object still in memory."""
    record_id = record.id
    db.session.expire_all()
    row = db.session.get(InboundMessage, record_id)
    assert row is not None
    return row


def _with_attachment(headers: str, data: bytes) -> bytes:
    body = base64.encodebytes(data).decode()
    return (
        HEAD.decode()
        + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        + "--B\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
        + f"--B\r\n{headers}\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n--B--\r\n"
    ).encode()


def test_a_reply_with_html_and_attachments_is_stored_as_received(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_html_attachments.eml")).message
    db.session.commit()

    row = _reloaded(record)
    assert (row.kind, row.delivery_id) == ("reply", deliveries["ana@example.org"])
    # Stored untouched: sanitising is the display's job, and it needs the original.
    assert '<a href="javascript:alert(document.domain)">' in row.html
    assert '<img src="https://tracker.example/open.gif?u=ana">' in row.html
    assert "<script>new Image()" in row.html
    assert "embassy’s answer" in row.html  # quoted-printable UTF-8 decoded
    # The forwarded message's own HTML is not taken for the reply's.
    assert "Inner draft" not in row.html
    assert row.attachments == [
        {"filename": "logo.png", "content_type": "image/png", "size": 67},
        {"filename": "answer.pdf", "content_type": "application/pdf", "size": 1040},
        {
            "filename": "Ответ посольства.docx",
            "content_type": (
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            ),
            "size": 304,
        },
        {"filename": "Draft reply.eml", "content_type": "message/rfc822", "size": 460},
    ]
    # The text excerpt is still the plain part.
    assert "Please find the embassy's answer attached" in row.text


def test_the_hostile_html_sample_keeps_its_script_tags_for_the_sanitiser(app: Flask) -> None:
    sent_campaign()
    raw = corpus("reply_hostile_html.eml")

    record = record_inbound(raw).message
    db.session.commit()

    row = _reloaded(record)

    body = raw.split(b"\n\n", 1)[1].decode()
    assert row.html == body
    assert "document.cookie" not in row.text


@pytest.mark.parametrize("sample", sorted(path.name for path in CORPUS.glob("*.eml")))
def test_every_sample_can_be_downloaded_byte_for_byte(app: Flask, sample: str) -> None:
    raw = corpus(sample)

    record = record_inbound(raw).message
    db.session.commit()

    row = _reloaded(record)

    assert row.raw_blob is not None and len(row.raw_blob) < len(raw)
    assert raw_message_of(row) == raw


def test_a_message_over_the_size_cap_is_recorded_without_its_original(app: Flask) -> None:
    raw = HEAD + b"\r\n" + b"x" * (MAX_BYTES + 1)

    record = record_inbound(raw).message
    db.session.commit()

    row = _reloaded(record)

    assert row.raw_blob is None
    assert raw_message_of(row) is None
    assert "too large to keep the original" in row.problems
    assert row.subject == "Hello"


def test_an_html_part_over_two_megabytes_is_cut_and_flagged() -> None:
    html = "<p>" + "a" * MAX_HTML + "</p>"
    raw = HEAD + b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode()

    parsed = parse_message(raw)

    assert len(parsed.html) == MAX_HTML
    assert parsed.html.startswith("<p>aaa")
    assert "HTML cut at 2 MB" in parsed.problems


def test_an_html_part_in_an_unknown_charset_or_broken_base64_is_kept_and_flagged() -> None:
    raw = (
        HEAD
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="A"\r\n\r\n'
        + b"--A\r\nContent-Type: text/html; charset=x-no-such-charset\r\n\r\n"
        + b"<p>caf\xc3\xa9</p>\r\n--A--\r\n"
    )
    broken = (
        HEAD
        + b"Content-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b"PHA+YW5z!!!d2VyPC9wPg==\r\n"  # "<p>answer</p>" with stray characters
    )

    unknown = parse_message(raw)
    cut = parse_message(broken)

    assert unknown.html == "<p>café</p>"
    assert "unknown charset" in unknown.problems
    assert cut.html == "<p>answer</p>"
    assert "broken base64" in cut.problems


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 57, 1000])
def test_an_attachment_is_listed_with_its_size_without_being_opened(length: int) -> None:
    data = bytes(range(256)) * 4
    raw = _with_attachment(
        'Content-Type: application/zip\r\nContent-Disposition: attachment; filename="a.zip"',
        data[:length],
    )

    parsed = parse_message(raw)

    assert parsed.attachments == [
        {"filename": "a.zip", "content_type": "application/zip", "size": length}
    ]
    assert parsed.text == "See attached."


def test_a_named_part_without_a_disposition_is_an_attachment_and_not_the_html() -> None:
    raw = _with_attachment('Content-Type: text/html; name="page.html"', b"<p>saved page</p>")

    parsed = parse_message(raw)

    assert parsed.attachments == [
        {"filename": "page.html", "content_type": "text/html", "size": 17}
    ]
    assert parsed.html == ""


def test_hostile_filenames_are_made_storable_and_capped() -> None:
    long_name = "x" * 1000 + ".pdf"
    header_injection = "=?utf-8?q?report=0D=0ABcc=3A_victim=40example.org=00.pdf?="
    named = [
        _with_attachment(
            f'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="{name}"',
            b"%PDF",
        )
        for name in (long_name, header_injection)
    ]

    long_parsed, injected = (parse_message(raw) for raw in named)

    assert long_parsed.attachments[0]["filename"] == "x" * MAX_FILENAME
    assert injected.attachments[0]["filename"] == "report Bcc: victim@example.org .pdf"
    stored = str(injected.attachments[0]["filename"])
    assert "\r" not in stored and "\n" not in stored and "\x00" not in stored
