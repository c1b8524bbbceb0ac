"""A reply whose From fails DMARC is marked unverified; only our own servers' verdicts count."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from campaign.extensions import db
from campaign.inbound.authentication import dmarc_verdict, parse_authentication_results
from campaign.inbound.parsing import parse_message
from campaign.services.replies.intake import record_inbound
from tests.inbound.helpers import corpus, delivery, sent_campaign

BODY = (
    "From: Eve Martin <eve@example.org>\r\nSubject: Re: Release the defenders\r\n"
    "Message-ID: <x.1@example.org>\r\n\r\nHello\r\n"
)


def _message(*authentication_results: str) -> bytes:
    headers = "".join(f"Authentication-Results: {value}\r\n" for value in authentication_results)
    return (headers + BODY).encode()


@pytest.fixture
def plain_app() -> Iterator[Flask]:
    """An app context for the verdict alone; no database is involved."""
    application = Flask("dmarc-test")
    application.config["AUTHSERV_IDS"] = ""
    with application.app_context():
        yield application


def test_a_failed_dmarc_reply_is_recorded_unverified_and_the_forged_pass_below_is_ignored(
    app: Flask,
) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_dmarc_fail.eml")).message
    db.session.commit()

    assert (record.dmarc, record.is_unverified) == ("fail", True)
    # Threaded to the letter it claims to answer, and shown with a warning; but Eve is not
    # counted as having answered (nor dropped from the follow-ups) on a forgeable sender.
    assert (record.kind, record.delivery_id) == ("reply", deliveries["eve@example.org"])
    assert delivery(deliveries["eve@example.org"]).replied_at is None


def test_a_passing_reply_is_verified_whatever_the_senders_own_header_says(app: Flask) -> None:
    deliveries = sent_campaign()

    record = record_inbound(corpus("reply_dmarc_pass.eml")).message
    db.session.commit()

    assert (record.dmarc, record.is_unverified) == ("pass", False)
    assert record.delivery_id == deliveries["ben@example.net"]


def test_a_reply_without_authentication_results_is_neither_verified_nor_flagged(
    app: Flask,
) -> None:
    sent_campaign()

    record = record_inbound(corpus("reply_in_reply_to.eml")).message
    db.session.commit()

    assert (record.dmarc, record.is_unverified) == ("", False)


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        (["mx.hro.example.org; dmarc=pass header.from=example.org"], ("pass", False)),
        (["mx.hro.example.org; dmarc=fail (p=none) header.from=example.org"], ("fail", True)),
        (["mx.hro.example.org; dmarc=none header.from=example.org"], ("none", False)),
        (["mx.hro.example.org; DMARC=FAIL header.from=EXAMPLE.ORG"], ("fail", True)),
        # The server checked nothing, or not DMARC: no verdict either way.
        (["mx.hro.example.org; none"], ("", False)),
        (["mx.hro.example.org; spf=fail smtp.mailfrom=eve@example.org"], ("", False)),
        (["mx.hro.example.org; dmarc=temperror header.from=example.org"], ("", False)),
        # Only the topmost header is ours; a pass the sender wrote below a fail is ignored,
        # and so is a fail the sender wrote below a pass.
        (
            ["mx.hro.example.org; dmarc=fail", "mx.hro.example.org; dmarc=pass"],
            ("fail", True),
        ),
        (
            ["mx.hro.example.org; dmarc=pass", "mx.hro.example.org; dmarc=fail"],
            ("pass", False),
        ),
        # A pass for another domain than the From staff will see does not verify it.
        (["mx.hro.example.org; dmarc=pass header.from=evil.example"], ("pass", True)),
        # Unreadable or absurd headers are no verdict, never an error.
        (["mx.hro.example.org; dmarc=pass (unclosed comment"], ("", False)),
        (["mx.hro.example.org; " + "(" * 10_000], ("", False)),
        (["mx.hro.example.org; dmarc=pass; " + "x" * 20_000], ("", False)),
        ([";;; ==="], ("", False)),
    ],
)
def test_the_verdict_comes_from_the_topmost_header_only(
    plain_app: Flask, headers: list[str], verdict: tuple[str, bool]
) -> None:
    assert dmarc_verdict(parse_message(_message(*headers))) == verdict


def test_configured_servers_are_trusted_wherever_they_are_and_others_are_not(
    plain_app: Flask,
) -> None:
    plain_app.config["AUTHSERV_IDS"] = " mx.hro.example.org , filter.hro.example.org"
    # A server we do not list (say, a forwarding mailbox provider) wrote the top header.
    below_an_unknown_server = _message(
        "forwarder.example; dmarc=pass header.from=example.org",
        "mx.hro.example.org; dmarc=fail header.from=example.org",
    )
    # The sender wrote a header naming our server, below the one our server wrote.
    forged_below_ours = _message(
        "filter.hro.example.org; dmarc=fail header.from=example.org",
        "mx.hro.example.org; dmarc=pass header.from=example.org",
    )
    only_untrusted = _message("evil.example; dmarc=pass header.from=example.org")

    assert dmarc_verdict(parse_message(below_an_unknown_server)) == ("fail", True)
    assert dmarc_verdict(parse_message(forged_below_ours)) == ("fail", True)
    assert dmarc_verdict(parse_message(only_untrusted)) == ("", False)


def test_a_header_spelled_with_comments_versions_and_quotes_reads_as_written() -> None:
    found = parse_authentication_results(
        '(our server) "mx.hro.example.org" 1; dkim/1=pass (good signature) header.d=example.org'
        ' header.s="s 1"; spf=pass smtp.mailfrom=eve@example.org;\r\n\t'
        'dmarc=pass reason="policy; ok" (p=reject) header.from=Example.org'
    )

    assert found is not None
    assert found.authserv_id == "mx.hro.example.org"
    assert [(item.method, item.result) for item in found.results] == [
        ("dkim", "pass"),
        ("spf", "pass"),
        ("dmarc", "pass"),
    ]
    assert found.results[0].properties == {"header.d": "example.org", "header.s": "s 1"}
    dmarc = found.first("dmarc")
    assert dmarc is not None and dmarc.properties == {"header.from": "example.org"}


def test_an_internationalised_from_domain_matches_its_ascii_spelling(plain_app: Flask) -> None:
    raw = (
        "Authentication-Results: mx.hro.example.org; dmarc=pass"
        " header.from=xn--bcher-kva.example\r\n"
        "From: =?utf-8?q?B=C3=BCcher?= <info@bücher.example>\r\nSubject: Hi\r\n\r\nHi\r\n"
    ).encode()

    assert dmarc_verdict(parse_message(raw)) == ("pass", False)
