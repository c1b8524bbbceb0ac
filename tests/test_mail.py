"""campaign.mail: the hand-built messages read back identically with the stdlib parser."""

from __future__ import annotations

import datetime as dt
import email
import email.headerregistry
import email.policy
import email.utils
import re
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask

from campaign.letters.flowed import unflow
from campaign.letters.types import RenderedLetter
from campaign.mail import (
    AddressError,
    Attachment,
    HeaderInjectionError,
    MessageError,
    build_message,
    letter_parts,
    make_message_id,
)

SENDER = "Réseau Droits Humains <campaign@example.org>"
SENT_AT = dt.datetime(2026, 3, 8, 9, 30, tzinfo=dt.UTC)
ORG = "Réseau Droits Humains"


def make_letter(**changes: Any) -> RenderedLetter:
    values: dict[str, Any] = {
        "statement_id": 7,
        "statement_version": 2,
        "contact_id": 11,
        "language": "en",
        "to_name": "Jane Doe",
        "to_address": "jane@example.net",
        "cc_addresses": ("secretariat@example.org",),
        "subject": "Release the defenders",
        "html_body": "<p>Your Excellency,</p>\n<p>We write to you.</p>\n",
        "text_body": "Your Excellency,\n\nWe write to you.\n",
        "salutation": "Your Excellency,",
        "closing": "Yours sincerely,",
        "address_block": ("H.E. Jane Doe", "Embassy of Somewhere", "Brussels"),
        "signatory_lines": ("Org One", "Org Two"),
        "letter_date": dt.date(2026, 3, 8),
    }
    values.update(changes)
    return RenderedLetter(**values)


LONG_LATIN = "Nous demandons la libération immédiate de tous les défenseurs. " * 25
LONG_CYRILLIC = "Мы требуем немедленного освобождения всех правозащитников. " * 25

LETTERS = {
    "english": make_letter(),
    "french": make_letter(
        language="fr",
        to_name="Madame Hélène Lefèvre-Çelik",
        to_address="helene@élysée.fr",
        subject="Lettre ouverte : « libérez les défenseurs » — appel n° 3",
        html_body="<p>Madame la Rapporteuse spéciale,</p>\n<p>Nous écrivons…</p>\n",
        text_body="Madame la Rapporteuse spéciale,\n\nNous écrivons…\n",
    ),
    "russian": make_letter(
        language="ru",
        to_name="Иван Петров",
        to_address="posol@посольство.рф",
        cc_addresses=("Секретариат <secretariat@example.org>", "office@example.org"),
        subject="Открытое письмо: свобода для правозащитников Беларуси и России",
        html_body="<p>Уважаемый господин Посол!</p>\n",
        text_body="Уважаемый господин Посол!\n",
        address_block=("Его Превосходительству", "г-ну И. Петрову"),
    ),
    "emoji": make_letter(
        to_name="Ana 🌍 Lima",
        subject="Solidarity ✊🏽 with the defenders 🕊️",
        text_body="Thank you 🙏\n",
        html_body="<p>Thank you 🙏</p>\n",
    ),
    "tricky_lines": make_letter(
        text_body=f"From the start of the year\n.\n..\nTrailing space \n{LONG_LATIN}\n",
        html_body=f"<p>From here</p>\n.\n<p>{LONG_CYRILLIC}</p>\n",
        subject="A subject long enough to need folding " * 4 + "end",
    ),
}


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    plain = _lf(text.get_content())
    if text.get_param("format") == "flowed":  # read as a flowed-aware client does
        plain = unflow(plain)
    return plain, _lf(html.get_content())


def _hard_lines(text: str) -> str:
    """`text` as format=flowed can carry it: no line ends in a space (that is a soft break)."""
    return "\n".join(line.rstrip(" ") for line in text.split("\n"))


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def build(letter: RenderedLetter, **kwargs: Any) -> bytes:
    kwargs.setdefault("sender", SENDER)
    kwargs.setdefault("date", SENT_AT)
    kwargs.setdefault("organisation", ORG)
    return build_message(letter, **kwargs)


def assert_wire_format(data: bytes) -> None:
    assert b"\n" not in data.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in data.replace(b"\r\n", b""), "a bare CR"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "headers must be ASCII (RFC 2047 / IDNA)"
    assert all(len(line) <= 78 for line in head.split(b"\r\n")), "headers fold at 78"


@pytest.mark.parametrize("name", list(LETTERS))
def test_every_header_and_both_bodies_read_back_identically(name: str) -> None:
    letter = LETTERS[name]
    data = build(letter, reply_to="Replies <replies@example.org>")
    assert_wire_format(data)
    message = parse(data)
    assert not message.defects
    assert message["From"].addresses[0].display_name == ORG
    assert message["From"].addresses[0].addr_spec == "campaign@example.org"
    to = message["To"].addresses[0]
    assert to.display_name == letter.to_name
    local, domain = letter.to_address.split("@")
    assert to.addr_spec == f"{local}@{domain.encode('idna').decode()}"
    assert [a.addr_spec for a in message["Cc"].addresses] == [
        email.utils.parseaddr(cc)[1] for cc in letter.cc_addresses
    ]
    assert message["Reply-To"].addresses[0].addr_spec == "replies@example.org"
    assert message["Subject"] == letter.subject
    assert message["Date"].datetime == SENT_AT
    assert message["Content-Language"] == letter.language
    assert message["MIME-Version"] == "1.0"
    assert re.fullmatch(r"<[0-9a-f]+\.[0-9a-f]{24}@example\.org>", message["Message-ID"])
    assert message.get_content_type() == "multipart/alternative"
    parts = letter_parts(letter, organisation=ORG)
    assert bodies(message) == (_hard_lines(parts.text), parts.html)
    assert letter.text_body in parts.text
    assert letter.html_body in parts.html


@pytest.mark.parametrize("name", list(LETTERS))
def test_means_the_same_as_the_stdlib_emailmessage(name: str) -> None:
    letter = LETTERS[name]
    ours = parse(build(letter, message_id="<fixed@example.org>"))
    parts = letter_parts(letter, organisation=ORG)
    reference = EmailMessage(policy=email.policy.SMTP)
    reference["Date"] = email.utils.format_datetime(SENT_AT)
    reference["From"] = SENDER
    reference["To"] = email.headerregistry.Address(
        letter.to_name, *_idna(letter.to_address).split("@")
    )
    reference["Cc"] = ", ".join(letter.cc_addresses)
    reference["Subject"] = letter.subject
    reference["Message-ID"] = "<fixed@example.org>"
    reference.set_content(_hard_lines(parts.text))
    reference.add_alternative(parts.html, subtype="html")
    reference["Content-Language"] = letter.language  # set_content drops Content-* headers
    theirs = parse(reference.as_bytes())
    for header in ("Date", "From", "To", "Cc", "Message-ID", "Content-Language"):
        assert str(ours[header]) == str(theirs[header]), header
    # The stdlib cannot always read its own Subject back: it mixes plain and encoded words
    # and loses the space between "»" and "—". Ours must be exact; theirs only close.
    assert ours["Subject"] == letter.subject
    assert str(theirs["Subject"]).replace(" ", "") == letter.subject.replace(" ", "")
    assert bodies(ours) == bodies(theirs)


def _idna(address: str) -> str:
    local, domain = address.split("@")
    return f"{local}@{domain.encode('idna').decode()}"


def test_a_long_non_ascii_name_is_split_into_standard_encoded_words() -> None:
    name = "Иван Петрович Сидоров-Длиннофамильный, Чрезвычайный и Полномочный Посол"
    data = build(make_letter(to_name=name, subject=LONG_CYRILLIC[:300]))
    assert_wire_format(data)
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(word) <= 75 for word in re.findall(r"=\?[^?]+\?[bq]\?[^?]*\?=", head))
    raw_to = re.search(r"^To: (.*?)\r\n(?=\S)", head, re.M | re.S)
    assert raw_to is not None
    # The RFC 2047 reading (whitespace between encoded-words is not text), as mail clients
    # do; the stdlib's address parser keeps that whitespace (it does so for its own output).
    phrase = raw_to.group(1).rsplit("<", 1)[0]
    assert str(make_header(decode_header(phrase))) == name
    assert parse(data)["Subject"] == LONG_CYRILLIC[:300]


@pytest.mark.parametrize(
    "subject",
    [
        "=?UTF-8?Q?Hi=0D=0ABcc:_x@evil.test?=",
        "Hi =?utf-8?b?DQpCY2M6IHhAZXZpbC50ZXN0?= there",
    ],
)
def test_a_subject_typed_as_an_encoded_word_is_text_not_a_header(subject: str) -> None:
    data = build(make_letter(subject=subject))
    message = parse(data)
    assert message["Subject"] == subject
    assert "Bcc" not in message
    assert not re.search(rb"^bcc:", data, re.I | re.M)


FORBIDDEN = ["\r", "\n", "\r\n", "\x00", "\u2028", "\u2029", "\x85"]


@pytest.mark.parametrize("character", FORBIDDEN)
@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("Subject", lambda c: {"subject": f"Hello{c}Bcc: x@evil.test"}),
        ("To", lambda c: {"to_name": f"Jane{c}Bcc: x@evil.test"}),
        ("To", lambda c: {"to_address": f"jane@example.net{c}Bcc: x@evil.test"}),
        ("Cc", lambda c: {"cc_addresses": (f"a@example.org{c}Bcc: x@evil.test",)}),
    ],
)
def test_a_line_break_or_nul_in_a_letter_header_is_refused(
    field: str, change: Any, character: str
) -> None:
    with pytest.raises(HeaderInjectionError) as caught:
        build(make_letter(**change(character)))
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize("character", FORBIDDEN)
def test_a_line_break_in_sender_reply_to_or_extra_header_is_refused(character: str) -> None:
    letter = make_letter()
    with pytest.raises(HeaderInjectionError, match="From"):
        build(letter, sender=f"Org{character}Bcc: x@evil.test <a@example.org>")
    with pytest.raises(HeaderInjectionError, match="Reply-To"):
        build(letter, reply_to=f"a@example.org{character}Bcc: x@evil.test")
    with pytest.raises(HeaderInjectionError, match="List-Id"):
        build(letter, extra_headers={"List-Id": f"x{character}Bcc: x@evil.test"})
    with pytest.raises(HeaderInjectionError, match="Message-ID"):
        build(letter, message_id=f"<a@example.org>{character}Bcc: x@evil.test")


def test_extra_headers_are_written_but_cannot_replace_the_builders_own() -> None:
    letter = make_letter()
    data = build(
        letter,
        extra_headers={
            "List-Unsubscribe": "<https://example.org/u/abc>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    message = parse(data)
    assert message["List-Unsubscribe"] == "<https://example.org/u/abc>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    for name in ("Bcc", "from", "Subject", "Content-Type"):
        with pytest.raises(MessageError, match="itself"):
            build(letter, extra_headers={name: "x@evil.test"})
    with pytest.raises(MessageError, match="header name"):
        build(letter, extra_headers={"Bad Name:": "x"})


def test_recipient_domains_are_idna_encoded_and_utf8_local_parts_refused() -> None:
    data = build(make_letter(to_address="Info@Bücher.example", cc_addresses=("a@пример.рф",)))
    message = parse(data)
    assert message["To"].addresses[0].addr_spec == "Info@xn--bcher-kva.example"
    assert message["Cc"].addresses[0].addr_spec == "a@xn--e1afmkfd.xn--p1ai"
    with pytest.raises(AddressError, match="SMTPUTF8"):
        build(make_letter(to_address="иван@example.org"))
    with pytest.raises(AddressError, match="not an e-mail address"):
        build(make_letter(to_address="no-at-sign"))
    with pytest.raises(AddressError, match="not a valid internet domain"):
        build(make_letter(to_address="a@exa mple.org"))


def test_message_ids_are_unique_and_on_the_organisations_domain() -> None:
    ids = {make_message_id("example.org") for _ in range(20_000)}
    assert len(ids) == 20_000
    for message_id in list(ids)[:50]:
        # The right side is the organisation's domain, never this machine's host name.
        assert message_id.startswith("<") and message_id.endswith("@example.org>")
    assert make_message_id("правозащита.рф").endswith("@xn--80aaagzh3bfj0a9e.xn--p1ai>")
    data = build(make_letter(), message_id="kept-on-retry@example.org")
    assert parse(data)["Message-ID"] == "<kept-on-retry@example.org>"
    with pytest.raises(MessageError, match="Message-ID"):
        build(make_letter(), message_id="no domain")


def test_transfer_encoding_is_the_lightest_safe_one() -> None:
    def encodings(data: bytes) -> list[str]:
        return [
            str(part["Content-Transfer-Encoding"])
            for part in parse(data).walk()
            if part.get_content_maintype() == "text"
        ]

    assert encodings(build(make_letter(), organisation="Org")) == ["7bit", "7bit"]
    assert encodings(build(LETTERS["russian"])) == ["8bit", "8bit"]
    # The text part is wrapped (format=flowed), so only the HTML's 1,000-octet line
    # needs an encoding that shortens lines.
    text_part, html_part = encodings(build(LETTERS["tricky_lines"]))
    assert text_part == "8bit" and html_part in {"quoted-printable", "base64"}
    strict = build(LETTERS["russian"], eight_bit=False)
    assert strict.isascii()
    assert set(encodings(strict)) <= {"quoted-printable", "base64"}
    text, html = bodies(parse(strict))
    parts = letter_parts(LETTERS["russian"], organisation=ORG)
    assert (text, html) == (_hard_lines(parts.text), parts.html)


def test_a_line_starting_from_is_protected_in_quoted_printable() -> None:
    data = build(LETTERS["tricky_lines"], eight_bit=False)
    assert not re.search(rb"^From ", data.split(b"\r\n\r\n", 1)[1], re.M)
    assert "From the start of the year\n.\n..\n" in bodies(parse(data))[0]


def test_attachments_make_multipart_mixed_with_base64_files() -> None:
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 40
    data = build(
        LETTERS["russian"],
        attachments=[
            Attachment("Письмо послу.pdf", "application/pdf", pdf),
            Attachment("annex.docx", "application/vnd.openxmlformats", b"PK\x03\x04"),
        ],
    )
    assert_wire_format(data)
    message = parse(data)
    assert message.get_content_type() == "multipart/mixed"
    files = list(message.iter_attachments())
    assert [f.get_filename() for f in files] == ["Письмо послу.pdf", "annex.docx"]
    assert files[0].get_content_type() == "application/pdf"
    assert files[0]["Content-Transfer-Encoding"] == "base64"
    assert files[0].get_content() == pdf
    parts = letter_parts(LETTERS["russian"], organisation=ORG)
    assert bodies(message) == (parts.text, parts.html)
    with pytest.raises(MessageError, match="content type"):
        build(make_letter(), attachments=[Attachment("a.pdf", "application/pdf\r\nBcc: x", b"")])


def test_the_html_layout_escapes_contact_data_and_reads_as_a_letter() -> None:
    letter = make_letter(
        to_name="<script>alert(1)</script>",
        address_block=("<script>alert(2)</script>", "Rue & Co"),
        signatory_lines=("Org <One>",),
    )
    parts = letter_parts(letter, organisation="<b>Org</b>", letter_date=dt.date(2026, 3, 8))
    assert "<script>" not in parts.html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in parts.html
    assert "Rue &amp; Co" in parts.html and "Org &lt;One&gt;" in parts.html
    assert "&lt;b&gt;Org&lt;/b&gt;" in parts.html
    assert "<table" in parts.html and "8 March 2026" in parts.html
    # Plain text is plain: nothing escaped, in the order of a printed letter.
    assert parts.text.index("<b>Org</b>") < parts.text.index("8 March 2026")
    assert parts.text.index("8 March 2026") < parts.text.index("<script>alert(2)</script>")
    assert parts.text.index("Rue & Co") < parts.text.index("We write to you.")
    assert parts.text.rstrip().endswith("Org <One>")
    french = letter_parts(make_letter(language="fr"), organisation="X")
    assert "8 mars 2026" in french.text and 'lang="fr"' in french.html


def test_the_signatory_block_is_not_repeated_when_the_body_prints_it() -> None:
    letter = make_letter(
        text_body="Text.\n\nYours,\n\nOrg One\nOrg Two\n",
        html_body="<p>Text.</p>\n<p>Yours,</p>\n<p>Org One<br>\nOrg Two</p>\n",
        signatories_in_body=True,  # what render_letter sets when the template prints it
    )
    parts = letter_parts(letter, organisation=ORG)
    assert parts.text.count("Org One") == 1 and parts.html.count("Org One") == 1


def test_ascii_names_with_specials_are_quoted() -> None:
    name = 'Doe, Jane "JD" (Ambassador) \\ x'
    message = parse(build(make_letter(to_name=name)))
    assert message["To"].addresses[0].display_name == name


def test_naive_date_is_refused() -> None:
    with pytest.raises(MessageError, match="timezone"):
        build(make_letter(), date=dt.datetime(2026, 1, 1))


def test_the_app_settings_name_the_letterhead_and_message_id_domain(app: Flask) -> None:
    app.config.update(ORGANISATION_NAME="Civil Rights Defenders", MESSAGE_ID_DOMAIN="crd.org")
    data = build_message(make_letter(), sender="campaign@mail.example.org", date=SENT_AT)
    message = parse(data)
    assert message["Message-ID"].endswith("@crd.org>")
    text, html = bodies(message)
    assert text.startswith("Civil Rights Defenders\n") and "Civil Rights Defenders" in html
    app.config.update(ORGANISATION_NAME="", MESSAGE_ID_DOMAIN="", MAIL_EIGHT_BIT=False)
    message = parse(build_message(LETTERS["russian"], sender=SENDER, date=SENT_AT))
    assert message["Message-ID"].endswith("@example.org>")
    assert bodies(message)[0].startswith(ORG + "\n")
    assert {
        p["Content-Transfer-Encoding"] for p in message.walk() if p.get_content_maintype() == "text"
    } <= {
        "quoted-printable",
        "base64",
    }
