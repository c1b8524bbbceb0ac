"""Attachment names after review (issue 14, items 7 and 8): a long French or Russian PDF name
goes out in RFC 2231 sections on lines within 78 characters, and a mail parser and a real
IMAP server (Dovecot, what webmail and desktop clients read) put it back together."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import date
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask

from campaign.letters.types import RenderedLetter
from campaign.mail import Attachment, build_message
from campaign.services.statements.complete_letters import pdf_filename
from tests.servers import DovecotServer

NAMES = [
    "Lettre conjointe aux missions permanentes auprès de l’ONU à Genève — 2026-12-07.pdf",
    "Совместное письмо постоянным представительствам при ООН в Женеве — защитники "
    "прав человека – 2026-12-07.pdf",
    "Short name.pdf",
    "A plain ASCII name that is long enough to need sections of its own, 2026-12-07.pdf",
]


def _letter(language: str = "fr", subject: str = "Lettre") -> RenderedLetter:
    return RenderedLetter(
        statement_id=1,
        statement_version=1,
        contact_id=1,
        language=language,
        to_name="",
        to_address="p@example.net",
        cc_addresses=(),
        subject=subject,
        html_body="<p>Texte.</p>",
        text_body="Texte.",
        salutation="",
        closing="",
        address_block=(),
        signatory_lines=(),
    )


def _message(name: str, eight_bit: bool = True) -> bytes:
    return build_message(
        _letter(),
        sender="Office <office@example.org>",
        attachments=[Attachment(name, "application/pdf", b"%PDF-1.4 x")],
        eight_bit=eight_bit,
    )


def _head_lines(raw: bytes) -> list[bytes]:
    # Every header line of every part (the lines before each part's blank line).
    lines, in_head = [], True
    for line in raw.split(b"\r\n"):
        if line.startswith(b"--=_"):
            in_head = True
        elif line == b"":
            in_head = False
        elif in_head:
            lines.append(line)
    return lines


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("eight_bit", [True, False])
def test_long_names_are_cut_into_sections_and_read_back_whole(name: str, eight_bit: bool) -> None:
    raw = _message(name, eight_bit)
    long = [line for line in _head_lines(raw) if len(line) > 78]
    assert long == []
    if len(name) > 60:
        assert b"filename*0*=utf-8''" in raw and b"filename*1*=" in raw
    for policy in (email.policy.default, email.policy.compat32):
        parsed = email.message_from_bytes(raw, policy=policy)
        parts = [p for p in parsed.walk() if p.get_content_type() == "application/pdf"]
        assert [p.get_filename() for p in parts] == [name]
        assert parts[0].get_param("name") is not None


def test_dovecot_reassembles_the_name_as_imap_clients_see_it(
    imap_server: DovecotServer,
) -> None:
    user = f"names-{uuid.uuid4().hex[:8]}@example.org"
    imap_server.add_user(user, "secret-password-1")
    imap_server.deliver(user, _message(NAMES[0]) + b"")
    imap_server.deliver(user, _message(NAMES[1]))
    client = imap_server.connect(user)
    try:
        client.select_folder("INBOX")
        found: list[str] = []
        for data in client.fetch(client.search(), ["BODYSTRUCTURE"]).values():
            structure: Any = data[b"BODYSTRUCTURE"]
            attachment = structure[0][1]  # the PDF after the alternative part
            disposition = dict(zip(attachment[8][1][::2], attachment[8][1][1::2], strict=True))
            value = disposition[b"filename*"].decode("ascii")
            charset, _language, encoded = value.split("'", 2)
            assert charset.lower() == "utf-8"
            found.append(unquote(encoded, encoding="utf-8"))
    finally:
        client.logout()
    assert sorted(found) == sorted(NAMES[:2])


def test_bidi_isolates_never_reach_a_file_name(app: Flask) -> None:
    subject = "Lettre \u2066evil\u2069 \u2067fdp.exe\u2069 conjointe\ufeff"
    name = pdf_filename(_letter(subject=subject), date(2026, 12, 10))
    assert not any(ch in name for ch in "\u2066\u2067\u2068\u2069\ufeff"), name
    assert name == "Lettre evil fdp.exe conjointe – 2026-12-10.pdf"
