"""The signatory block the layout adds (a body without {{ signatories }}, e.g. a follow-up)
stands one blank line under the closing in the text part, as in the HTML and the PDF."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from email.message import EmailMessage

import pytest

from campaign.letters.markdown import render_body
from campaign.letters.types import RenderedLetter
from campaign.mail import build_message
from tests.conftest import fresh_sqlite_copy

SIGNATORIES = ("Coalition against Torture in Kazakhstan", "Human Rights Network")


@pytest.fixture
def database_url(request: pytest.FixtureRequest) -> str:
    """SQLite only: the message is built from a letter in memory; no SQL runs (decision 0084)."""
    return fresh_sqlite_copy(request)


def _sent_text(body_markdown: str, *, in_body: bool) -> str:
    body = render_body(body_markdown, {}, lang="en")
    letter = RenderedLetter(
        statement_id=1,
        statement_version=1,
        contact_id=1,
        language="en",
        to_name="Jane Doe",
        to_address="jane@example.net",
        cc_addresses=(),
        subject="Re: Appeal",
        html_body=body.html,
        text_body=body.text,
        salutation="Dear Ambassador,",
        closing="Yours sincerely,",
        address_block=(),
        signatory_lines=SIGNATORIES,
        signatories_in_body=in_body,
        letter_date=dt.date(2026, 12, 7),
    )
    data = build_message(letter, sender="Org <org@example.org>")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


@pytest.mark.parametrize("ending", ["", "\n", "\n\n\n"])
def test_one_blank_line_between_the_closing_and_the_added_signatories(
    app: object, ending: str
) -> None:
    text = _sent_text(
        "Dear Ambassador,\n\nWe have not yet received your answer.\n\nYours sincerely," + ending,
        in_body=False,
    )
    assert "Yours sincerely,\n\nCoalition against Torture in Kazakhstan\n" in text
    assert "\n\n\n" not in text
    assert text.endswith("Human Rights Network\n")
