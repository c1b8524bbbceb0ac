"""RFC 5322 messages: the only place that builds them (and, later, talks SMTP).

The builder writes the bytes itself instead of going through `email.message.EmailMessage`:
the stdlib's modern policy costs ~1.25 ms per letter, this ~0.03 ms (decision 0008). What
it writes is deliberately small and standard, and tests read every message back with the
stdlib parser: CRLF line ends, no line over 998 octets, RFC 2047 encoded-words for any
header text that is not plain ASCII (or that could be mistaken for an encoded-word),
IDNA for recipient domains, UTF-8 bodies sent 8bit or quoted-printable. The few single
e-mails the application writes to one person (notices, staff reminders: build_notice) go
through the stdlib's SMTP policy instead, which writes CRLF as well.

Header values are refused, never cleaned, when they hold a line break or NUL: a value
that could start a new header (Bcc:) stops the letter with HeaderInjectionError.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from campaign.letters.flowed import CONTENT_TYPE_PARAMS, flow
from campaign.letters.types import RenderedLetter
from campaign.letters.typography import typeset

__all__ = [
    "AddressError",
    "Attachment",
    "HeaderInjectionError",
    "LetterParts",
    "MessageError",
    "build_message",
    "build_notice",
    "check_header_value",
    "encode_address",
    "feedback_id",
    "letter_parts",
    "list_id",
    "make_message_id",
]

MAX_LINE = 998  # RFC 5322 2.1.1, octets without the CRLF
FOLD_AT = 76  # RFC 2047: a line holding encoded-words stays within 76 characters
# Line breaks of every kind a mail client or a parser might honour, and NUL.
_FORBIDDEN = re.compile("[\r\n\x00\x85\u2028\u2029]")
_FORBIDDEN_NAMES = {
    "\r": "CR",
    "\n": "LF",
    "\x00": "NUL",
    "\x85": "NEL (U+0085)",
    "\u2028": "LINE SEPARATOR (U+2028)",
    "\u2029": "PARAGRAPH SEPARATOR (U+2029)",
}
# Printable ASCII and space: what may go into a header unencoded.
_PLAIN_HEADER = re.compile(r"[\x20-\x7e]*")
_ATEXT_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_DOT_ATOM_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LDH_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_MESSAGE_ID = re.compile(r"<[!#-'*+\-/-9=?A-Z^-~.]+@[A-Za-z0-9.\-\[\]:]+>")
# Characters a Q encoded-word may carry as themselves in any context (RFC 2047 5(3)).
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")

# Headers the builder writes itself; extra_headers may not name them.
_OWN_HEADERS = frozenset(
    {
        "date",
        "from",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "message-id",
        "content-language",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
    }
)


class MessageError(ValueError):
    """The message cannot be built as asked; the text says why, for the sender."""


class HeaderInjectionError(MessageError):
    """A header value holds a line break or NUL; it would end the header early."""

    def __init__(self, field: str, character: str) -> None:
        self.field = field
        self.character = character
        name = _FORBIDDEN_NAMES.get(character, repr(character))
        super().__init__(
            f"{field}: the value contains a line break or NUL ({name}); "
            "it was refused so that it cannot add a header"
        )


class AddressError(MessageError):
    """An e-mail address that cannot be written into a standard message."""


@dataclass(frozen=True)
class Attachment:
    """A file sent with the letter (the letter's PDF, a statement's annex)."""

    filename: str
    content_type: str  # "application/pdf"
    data: bytes


@dataclass(frozen=True)
class LetterParts:
    """The two alternatives of a letter, laid out (letterhead, date, address, body)."""

    text: str
    html: str


# --- header values -------------------------------------------------------------------------


def check_header_value(field: str, value: str) -> str:
    """Return value unchanged, or raise HeaderInjectionError naming the field."""
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise HeaderInjectionError(field, found.group())
    return value


def _q_encode(data: bytes) -> str:
    return "".join(chr(b) if b in _Q_SAFE else ("_" if b == 0x20 else f"={b:02X}") for b in data)


_Q_LITERAL = bytes(sorted(_Q_SAFE)) + b" "


def _q_length(data: bytes) -> int:
    # Each byte that is not written as itself takes three characters (=XX).
    return len(data) + 2 * len(data.translate(None, _Q_LITERAL))


def _encoded_words(text: str, first_budget: int) -> list[str]:
    """Split text into RFC 2047 encoded-words, each whole UTF-8 characters.

    The first word fits in first_budget characters (what is left of the header's first
    line); each following word fits on a continuation line of FOLD_AT characters.
    """
    data = text.encode("utf-8")
    use_b = (len(data) + 2) // 3 * 4 < _q_length(data)
    prefix, suffix = ("=?utf-8?b?", "?=") if use_b else ("=?utf-8?q?", "?=")
    overhead = len(prefix) + len(suffix)
    words: list[str] = []
    budget = max(first_budget, overhead + 12) - overhead
    chunk = bytearray()
    chunk_len = 0
    for char in text:
        encoded = char.encode("utf-8")
        size = (len(chunk) + len(encoded) + 2) // 3 * 4 if use_b else chunk_len + _q_length(encoded)
        if chunk and size > budget:
            words.append(_word(bytes(chunk), use_b, prefix, suffix))
            chunk = bytearray()
            chunk_len = 0
            budget = FOLD_AT - 1 - overhead
        chunk += encoded
        chunk_len += _q_length(encoded)
    if chunk or not words:
        words.append(_word(bytes(chunk), use_b, prefix, suffix))
    return words


def _word(data: bytes, use_b: bool, prefix: str, suffix: str) -> str:
    payload = base64.b64encode(data).decode("ascii") if use_b else _q_encode(data)
    return prefix + payload + suffix


def _needs_encoding(value: str) -> bool:
    # Unencoded only when a parser would read back exactly the same text: printable
    # ASCII, nothing that looks like an encoded-word, no whitespace a parser trims or
    # folds away, and no word too long to fit on a line.
    return (
        not _PLAIN_HEADER.fullmatch(value)
        or "=?" in value
        or value != value.strip()
        or "  " in value
        or any(len(word) > MAX_LINE - 80 for word in value.split(" "))
    )


def _fold(name: str, tokens: Sequence[str]) -> str:
    """Join tokens into `Name: value` with single spaces, folding before a token at FOLD_AT.

    Folding puts CRLF before an existing space, so unfolding gives back the same value.
    """
    line = name + ":"
    lines: list[str] = []
    for token in tokens:
        # The first token may start a line of its own too (a field body may begin with
        # folding white space): a long URL then stands alone, within 78 when it can be.
        if len(line) + 1 + len(token) > FOLD_AT:
            lines.append(line)
            line = " " + token
        else:
            line += " " + token
    lines.append(line)
    for folded in lines:
        if len(folded) > MAX_LINE:
            raise MessageError(f"{name}: a part of the value is too long for one line")
    return "\r\n".join(lines)


def _unstructured(name: str, value: str) -> str:
    """A whole header line (folded, no final CRLF) for free text such as Subject."""
    check_header_value(name, value)
    if not value:
        return name + ": "
    if not _needs_encoding(value):
        return _fold(name, value.split(" "))
    return _fold(name, _encoded_words(value, FOLD_AT - len(name) - 2))


def _phrase(name: str, field: str, display: str) -> list[str]:
    """A display name as tokens: atoms, a quoted-string, or encoded-words."""
    check_header_value(field, display)
    display = display.strip()
    if not display:
        return []
    if not _needs_encoding(display):
        if _ATEXT_PHRASE.fullmatch(display):
            return display.split(" ")
        quoted = '"' + display.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(name) + 2 + len(quoted) <= FOLD_AT:
            return [quoted]
    return _encoded_words(display, FOLD_AT - len(name) - 2)


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    """The domain in its ASCII (IDNA) form, for the envelope and the headers."""
    domain = domain.rstrip(".")
    if domain.isascii():
        ascii_domain = domain.lower()
    else:
        try:
            import idna

            ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
        except (ImportError, UnicodeError, ValueError) as error:
            # idna.IDNAError is a UnicodeError; the message names the domain only.
            raise AddressError(f"the domain {domain!r} is not a valid internet domain") from error
    if not _LDH_DOMAIN.fullmatch(ascii_domain) or len(ascii_domain) > 253:
        raise AddressError(f"the domain {domain!r} is not a valid internet domain")
    return ascii_domain


def encode_address(address: str, *, field: str = "address") -> str:
    """Return `local@domain` ready for SMTP and headers (domain in IDNA form)."""
    check_header_value(field, address)
    address = address.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{field}: {address!r} is not an e-mail address")
    if not local.isascii():
        raise AddressError(
            f"{field}: {address!r} has non-ASCII characters before the @, "
            "which needs SMTPUTF8; we only send standard ASCII addresses"
        )
    if not _DOT_ATOM_LOCAL.fullmatch(local) or len(local) > 64:
        raise AddressError(f"{field}: {address!r} is not an address we can write into a header")
    return f"{local}@{_ascii_domain(domain)}"


def _mailbox_tokens(name: str, field: str, display: str, address: str) -> list[str]:
    tokens = _phrase(name, field, display)
    encoded = encode_address(address, field=field)
    return [*tokens, f"<{encoded}>"] if tokens else [encoded]


def _address_header(name: str, mailboxes: Sequence[tuple[str, str]]) -> str:
    tokens: list[str] = []
    for display, address in mailboxes:
        if tokens:
            tokens[-1] += ","
        tokens.extend(_mailbox_tokens(name, name, display, address))
    return _fold(name, tokens)


@lru_cache(maxsize=1024)
def _parse_mailbox(field: str, value: str) -> tuple[str, str]:
    # Cached: the sender and the secretariat addresses repeat on every letter, and the
    # stdlib's address parser is a large part of a message's cost.
    check_header_value(field, value)
    display, address = parseaddr(value)
    if not address or "@" not in address:
        raise AddressError(f"{field}: {value!r} is not an e-mail address")
    return display, address


def make_message_id(domain: str) -> str:
    """Return a new, unique `<…@domain>` Message-ID on the organisation's domain.

    The left part is the time in microseconds and 96 random bits: unique without any
    state, and nothing about the machine (never a hostname lookup).
    """
    check_header_value("Message-ID domain", domain)
    stamp = format(time.time_ns() // 1000, "x")
    return f"<{stamp}.{secrets.token_hex(12)}@{_ascii_domain(domain.strip())}>"


def _message_id(value: str) -> str:
    check_header_value("Message-ID", value)
    value = value.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    if not _MESSAGE_ID.fullmatch(value) or len(value) > 250:
        raise MessageError(f"Message-ID: {value!r} is not of the form <id@domain>")
    return value


# --- bodies --------------------------------------------------------------------------------


def _crlf(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\n", "\r\n")


_EIGHT_BIT_BYTES = bytes(range(128, 256))


def _body_part(subtype: str, text: str, eight_bit: bool, params: str = "") -> bytes:
    """A text part's headers and body, in the lightest transfer encoding that is safe.

    7bit for ASCII, 8bit for UTF-8 (when the relay takes 8BITMIME); when a line is longer
    than 998 octets, the text holds NUL, or 8bit is off: quoted-printable or base64,
    whichever is shorter (the stdlib's rule: QP for mostly-Latin text, base64 for Cyrillic).
    Each keeps a line's trailing spaces (format=flowed soft breaks): 7bit and 8bit as they
    are, quoted-printable as "=20". `params` are added to the Content-Type.
    """
    content_type, cte, data = _encoded_body(subtype, text, eight_bit, params)
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode("ascii")
        + data
    )


def _encoded_body(subtype: str, text: str, eight_bit: bool, params: str) -> tuple[str, str, bytes]:
    """(Content-Type, Content-Transfer-Encoding, encoded body) of a text part: see _body_part."""
    data = _crlf(text).encode("utf-8")
    long_line = len(data) > MAX_LINE and max(map(len, data.split(b"\r\n"))) > MAX_LINE
    if not long_line and b"\x00" not in data and (eight_bit or data.isascii()):
        cte = "7bit" if data.isascii() else "8bit"
    else:
        # binascii keeps the CRLF line ends, soft-breaks at 76 and escapes "=", 8-bit
        # bytes, controls and trailing blanks. Some mbox stores rewrite a line starting
        # "From "; quoted-printable lets us write it so that none does.
        # Quoted-printable triples every 8-bit byte, base64 costs a third more for all:
        # counting the 8-bit bytes picks the shorter without encoding twice.
        eight_bit_bytes = len(data) - len(data.translate(None, _EIGHT_BIT_BYTES))
        if eight_bit_bytes * 6 <= len(data):
            qp = binascii.b2a_qp(data, istext=True)
            qp = qp.replace(b"\r\nFrom ", b"\r\n=46rom ")
            cte, data = "quoted-printable", b"=46rom " + qp[5:] if qp.startswith(b"From ") else qp
        else:
            cte, data = "base64", base64.encodebytes(data).replace(b"\n", b"\r\n")
    return f'text/{subtype}; charset="utf-8"{params}', cte, data


def _text_part(text: str, eight_bit: bool) -> bytes:
    """The plain-text alternative, wrapped at 72 as format=flowed (RFC 3676)."""
    return _body_part("plain", flow(text), eight_bit, _FLOWED_PARAMS)


_FLOWED_PARAMS = "".join(f"; {name}={value}" for name, value in CONTENT_TYPE_PARAMS)


def _filename_params(filename: str) -> tuple[str, str]:
    """(`name=…` for Content-Type, `filename…` for Content-Disposition), RFC 2231 if needed."""
    check_header_value("attachment filename", filename)
    filename = filename.replace("/", "_").replace("\\", "_").strip() or "attachment"
    if _PLAIN_HEADER.fullmatch(filename) and len(filename) <= 60:
        quoted = '"' + filename.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"name={quoted}", f"filename={quoted}"
    if len(quote(filename, safe="")) > 900:
        raise MessageError(f"attachment filename {filename[:40]!r}… is too long")
    return _rfc2231_continued("name", filename), _rfc2231_continued("filename", filename)


def _rfc2231_continued(param: str, value: str) -> str:
    """`param*0*=utf-8''…;` CRLF ` param*1*=…` (RFC 2231 3 and 4): a UTF-8 value cut into
    sections on lines of at most 78 characters, never inside a character or a %XX escape.
    Without the cuts a long French or Russian title made a header line of 150+ characters.
    """
    sections: list[str] = []
    line = ""
    for char in value:
        piece = quote(char, safe="")
        # " name*12*=" + the section so far + ";" must stay within 78.
        prefix = f" {param}*{len(sections)}*=" + ("utf-8''" if not sections else "")
        if line and len(prefix) + len(line) + len(piece) + 1 > 78:
            sections.append(line)
            line = ""
        line += piece
    sections.append(line)
    if len(sections) == 1:
        return f"{param}*=utf-8''{sections[0]}"
    return ";\r\n ".join(
        f"{param}*{n}*=" + ("utf-8''" if n == 0 else "") + section
        for n, section in enumerate(sections)
    )


_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*")


def _attachment_part(attachment: Attachment) -> bytes:
    check_header_value("attachment content type", attachment.content_type)
    if not _CONTENT_TYPE.fullmatch(attachment.content_type):
        raise MessageError(f"attachment content type {attachment.content_type!r} is not valid")
    name_param, filename_param = _filename_params(attachment.filename)
    encoded = base64.encodebytes(attachment.data).replace(b"\n", b"\r\n")
    head = (
        f"Content-Type: {attachment.content_type.lower()};\r\n {name_param}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment;\r\n {filename_param}\r\n\r\n"
    ).encode("ascii")
    return head + encoded


def _boundary(parts: Iterable[bytes]) -> str:
    # "=_" cannot occur in quoted-printable or base64, and 96 random bits in 8-bit text
    # is out of reach; the check makes it certain.
    while True:
        boundary = "=_" + secrets.token_hex(12)
        marker = boundary.encode("ascii")
        if not any(marker in part for part in parts):
            return boundary


def _multipart(subtype: str, parts: Sequence[bytes]) -> tuple[str, bytes]:
    boundary = _boundary(parts)
    delimiter = b"--" + boundary.encode("ascii")
    body = b"".join(delimiter + b"\r\n" + part + b"\r\n" for part in parts)
    body += delimiter + b"--\r\n"
    return f'multipart/{subtype}; boundary="{boundary}"', body


# --- layout --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _standalone_environment() -> Any:
    # Outside an application (benchmarks, scripts) the same templates, the same rules.
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    from campaign.config import TEMPLATES_DIR

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(["html", "htm", "xml", "xhtml", "svg"]),
    )


def _environment() -> Any:
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.jinja_env
    return _standalone_environment()


def _signatories_in_body(letter: RenderedLetter) -> bool:
    # Statements usually print {{ signatories }} themselves; the layout adds the block
    # only when the body's template does not (decided from the template, not the text).
    return letter.signatories_in_body or not any(line.strip() for line in letter.signatory_lines)


def letter_parts(
    letter: RenderedLetter, *, organisation: str, letter_date: dt.date | None = None
) -> LetterParts:
    """Lay the letter out as its text and HTML alternatives (templates/email/).

    The layout is rendered once per shape (organisation, date, language, subject, number
    of address lines, signatory block) with stand-ins for the address lines and the two
    bodies, which are then put in per letter (decision 0072); a layout that does more with
    them than print them is rendered per letter, as it always was.
    """
    from campaign.letters.formatting import format_date

    env = _environment()
    date_text = format_date(
        letter_date or letter.letter_date or dt.datetime.now(dt.UTC).date(), letter.language
    )
    show_signatories = not _signatories_in_body(letter)
    text_template = env.get_template("email/letter.txt")
    html_template = env.get_template("email/letter.html")
    shape = _layout_shape(
        text_template,
        html_template,
        organisation,
        date_text,
        show_signatories,
        letter.language,
        letter.subject,
        len(letter.address_block),
        letter.signatory_lines,
    )
    if shape is not None:
        text_shape, html_shape = shape
        lines = letter.address_block
        text = text_shape.fill(lines, letter.html_body, letter.text_body)
        html = html_shape.fill(lines, letter.html_body, letter.text_body)
    else:
        context = {
            "letter": letter,
            "organisation": organisation,
            "date_text": date_text,
            "show_signatories": show_signatories,
        }
        text = text_template.render(context)
        html = html_template.render(context)
    # Each part ends with a line break, as text files and the stdlib's messages do.
    return LetterParts(text=text.rstrip("\n") + "\n", html=html.rstrip("\n") + "\n")


class _NotAShape(Exception):
    """The layout reads more of a letter than a shape holds, or changes a value it prints."""


class _ShapeLetter:
    """What the layout may read of a letter when it is laid out once per shape."""

    __slots__ = (
        "address_block",
        "html_body",
        "language",
        "signatory_lines",
        "subject",
        "text_body",
    )

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)

    def __getattr__(self, name: str) -> Any:
        raise _NotAShape(name)


# Stand-ins: private-use brackets, letters of both cases, "&" (to see whether the layout
# escapes the value there) and two lengths, so a layout that filters, slices, measures or
# changes a value instead of printing it is caught and rendered per letter. The one method
# a layout may call is rstrip (the text layout drops the body's final line break).
_OPEN, _CLOSE = "\ue000", "\ue001"
_STAND_IN = re.compile(f"{_OPEN}([^{_OPEN}{_CLOSE}]*){_CLOSE}")
_STAND_IN_INNER = re.compile(r"(a+)&(\d+)(?:r([0-9a-f]*)|(w))?Z")


class _StandIn(str):
    """A value's place in a layout rendered once per shape."""

    __slots__ = ()

    def __new__(cls, slot: int, variant: int, op: str = "") -> _StandIn:
        return super().__new__(cls, f"{_OPEN}{'a' * (variant + 1)}&{slot}{op}Z{_CLOSE}")

    def __getattribute__(self, name: str) -> Any:
        if name == "rstrip" or name.startswith("__"):
            return super().__getattribute__(name)
        raise _NotAShape(name)

    # What would tell a stand-in from the value (a test, a comparison, a slice) is refused.
    def _refuse(self, *args: Any) -> Any:
        raise _NotAShape("a test of the value")

    __bool__ = __len__ = __contains__ = __getitem__ = __iter__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse

    def rstrip(self, chars: str | None = None) -> str:
        found = _STAND_IN_INNER.fullmatch(str.__str__(self)[1:-1])
        if found is None or found.group(3) is not None or found.group(4):
            raise _NotAShape("rstrip")
        op = "w" if chars is None else "r" + chars.encode("utf-8").hex()
        return _StandIn(int(found.group(2)), len(found.group(1)) - 1, op)


@dataclass(frozen=True)
class _LayoutShape:
    """A laid-out part as text between slots; a slot is (value index, escaped for HTML,
    the characters rstrip() removes from the value, or None when it is printed whole)."""

    pieces: tuple[str, ...]
    slots: tuple[tuple[int, bool, str | None], ...]

    def fill(self, lines: Sequence[str], html_body: str, text_body: str) -> str:
        from markupsafe import escape

        count = len(lines)
        out = [self.pieces[0]]
        for (index, escaped, strip), piece in zip(self.slots, self.pieces[1:], strict=True):
            value = lines[index] if index < count else html_body if index == count else text_body
            if strip is not None:
                value = value.rstrip(strip or None)
            out.append(str(escape(value)) if escaped else value)
            out.append(piece)
        return "".join(out)


def _shape_of(rendered: str, variant: int, count: int) -> _LayoutShape | None:
    parts = _STAND_IN.split(rendered)
    pieces, found = parts[0::2], parts[1::2]
    if any(_OPEN in piece or _CLOSE in piece for piece in pieces):
        return None
    slots: list[tuple[int, bool, str | None]] = []
    for inner in found:
        escaped = "&amp;" in inner
        match = _STAND_IN_INNER.fullmatch(inner.replace("&amp;", "&", 1) if escaped else inner)
        if match is None or len(match.group(1)) != variant + 1 or int(match.group(2)) > count + 1:
            return None
        strip = "" if match.group(4) else None
        if match.group(3) is not None:
            strip = bytes.fromhex(match.group(3)).decode("utf-8")
            if not strip:
                return None  # rstrip("") removes nothing; "" means whitespace here
        slots.append((int(match.group(2)), escaped, strip))
    return _LayoutShape(tuple(pieces), tuple(slots))


@lru_cache(maxsize=256)
def _layout_shape(
    text_template: Any,
    html_template: Any,
    organisation: str,
    date_text: str,
    show_signatories: bool,
    language: str,
    subject: str,
    lines: int,
    signatory_lines: tuple[str, ...],
) -> tuple[_LayoutShape, _LayoutShape] | None:
    """The text and HTML layouts of one shape, or None when they cannot be filled exactly.

    Rendered with two sets of stand-ins; both must give the same pieces and slots."""
    shapes: list[tuple[_LayoutShape, _LayoutShape]] = []
    for variant in (0, 1):
        letter = _ShapeLetter(
            address_block=tuple(_StandIn(i, variant) for i in range(lines)),
            html_body=_StandIn(lines, variant),
            text_body=_StandIn(lines + 1, variant),
            language=language,
            subject=subject,
            signatory_lines=signatory_lines,
        )
        context = {
            "letter": letter,
            "organisation": organisation,
            "date_text": date_text,
            "show_signatories": show_signatories,
        }
        try:
            text = _shape_of(text_template.render(context), variant, lines)
            html = _shape_of(html_template.render(context), variant, lines)
        except _NotAShape:
            return None
        if text is None or html is None:
            return None
        shapes.append((text, html))
    return shapes[0] if shapes[0] == shapes[1] else None


# --- the message ---------------------------------------------------------------------------


def _settings() -> Mapping[str, Any]:
    from flask import current_app, has_app_context

    if has_app_context():
        return current_app.config
    from campaign.config import Config

    return vars(Config())


def organisation_name(sender: str | None = None, settings: Mapping[str, Any] | None = None) -> str:
    """The name on the letterhead: ORGANISATION_NAME, else the sender's display name."""
    settings = _settings() if settings is None else settings
    name = str(settings.get("ORGANISATION_NAME") or "")
    if name:
        return name
    display, address = _split_mailbox(sender or str(settings.get("MAIL_DEFAULT_SENDER") or ""))
    return display or address.rpartition("@")[2] or "Campaign"


@lru_cache(maxsize=64)
def _split_mailbox(value: str) -> tuple[str, str]:
    return parseaddr(value)


def message_id_domain(sender: str, settings: Mapping[str, Any] | None = None) -> str:
    """MESSAGE_ID_DOMAIN, else the sender's domain: never this machine's host name."""
    settings = _settings() if settings is None else settings
    configured = str(settings.get("MESSAGE_ID_DOMAIN") or "")
    return configured or _split_mailbox(sender)[1].rpartition("@")[2] or "localhost"


_LIST_ID = re.compile(r"(.*?)\s*<([A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+)>")


def _list_id_header(name: str, value: str) -> str:
    """List-Id as a phrase and `<id>` (RFC 2919): the name quoted or encoded, never the id."""
    check_header_value(name, value)
    found = _LIST_ID.fullmatch(value.strip())
    if found is None:
        raise MessageError(f"{name}: {value!r} is not of the form `Name <id.domain>`")
    return _fold(name, [*_phrase(name, name, found.group(1)), f"<{found.group(2)}>"])


_FEEDBACK_PART = re.compile(r"[A-Za-z0-9._-]+")


def list_id(
    campaign_id: int, name: str, sender: str, settings: Mapping[str, Any] | None = None
) -> str:
    """List-Id (RFC 2919) of a campaign: `Name <campaign-N.lists.DOMAIN>`.

    The id depends on the campaign's number and the Message-ID domain only, so it stays
    the same when the campaign is renamed; the name is for people (encoded when needed).
    """
    domain = _ascii_domain(message_id_domain(sender, settings))
    # build_message writes the name as a phrase (atoms, quoted or encoded-words).
    display = " ".join(name.replace("<", " ").replace(">", " ").split())
    return f"{display} <campaign-{int(campaign_id)}.lists.{domain}>".lstrip()


def feedback_id(
    campaign_id: int, kind: str, sender: str, settings: Mapping[str, Any] | None = None
) -> str:
    """Feedback-ID (Gmail's `a:b:SenderId`): campaign number, kind, the organisation's domain.

    Nothing personal: complaint reports are counted per campaign and kind, never per person.
    """
    domain = _ascii_domain(message_id_domain(sender, settings))
    if not _FEEDBACK_PART.fullmatch(kind):
        raise MessageError(f"Feedback-ID: {kind!r} is not a kind (letters, digits, . _ -)")
    return f"{int(campaign_id)}:{kind}:{domain}"


# A campaign's letters share most header lines (From, Cc of a mission, Subject, List-Id,
# the Date of the second): each is written once (decision 0072). Only values are keys,
# and an error is raised again every time (lru_cache keeps results, not exceptions).
def _date_header(sent_at: dt.datetime) -> str:
    # Equal instants in two zones are equal datetimes (one cache key), but print different
    # offsets: the offset is part of the key.
    return _date_header_at(sent_at, sent_at.utcoffset())


@lru_cache(maxsize=16)
def _date_header_at(sent_at: dt.datetime, _offset: dt.timedelta | None) -> str:
    return "Date: " + format_datetime(sent_at)


@lru_cache(maxsize=1024)
def _shared_address_header(name: str, mailboxes: tuple[tuple[str, str], ...]) -> str:
    return _address_header(name, mailboxes)


@lru_cache(maxsize=1024)
def _shared_unstructured(name: str, value: str) -> str:
    return _unstructured(name, value)


@lru_cache(maxsize=1024)
def _extra_header(name: str, value: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise MessageError(f"{name!r} is not a valid header name")
    if name.lower() in _OWN_HEADERS:
        raise MessageError(f"{name}: the message builder writes this header itself")
    if name.lower() == "list-id":
        return _list_id_header(name, value)
    return _unstructured(name, value)


def build_message(
    letter: RenderedLetter,
    *,
    sender: str,
    reply_to: str | None = None,
    message_id: str | None = None,
    attachments: Sequence[Attachment] = (),
    extra_headers: Mapping[str, str] | None = None,
    organisation: str | None = None,
    letter_date: dt.date | None = None,
    date: dt.datetime | None = None,
    eight_bit: bool | None = None,
    parts: LetterParts | None = None,
) -> bytes:
    """Build the letter as RFC 5322 bytes (CRLF), ready for SMTP DATA.

    Text and HTML alternatives (multipart/alternative), inside multipart/mixed when there
    are attachments. Settings not given come from the app's configuration:
    ORGANISATION_NAME, MESSAGE_ID_DOMAIN and MAIL_EIGHT_BIT.
    """
    settings = _settings()
    if eight_bit is None:
        eight_bit = bool(settings.get("MAIL_EIGHT_BIT", True))
    sent_at = date or dt.datetime.now(dt.UTC)
    if sent_at.tzinfo is None:
        raise MessageError("Date: the time must be timezone-aware")

    headers = [
        _date_header(sent_at.replace(microsecond=0)),
        _shared_address_header("From", (_parse_mailbox("From", sender),)),
        _address_header("To", [(letter.to_name, letter.to_address)]),
    ]
    if letter.cc_addresses:
        headers.append(
            _shared_address_header(
                "Cc", tuple(_parse_mailbox("Cc", cc) for cc in letter.cc_addresses)
            )
        )
    if reply_to:
        headers.append(_shared_address_header("Reply-To", (_parse_mailbox("Reply-To", reply_to),)))
    headers.append(_shared_unstructured("Subject", letter.subject))
    if message_id is None:
        message_id = make_message_id(message_id_domain(sender, settings))
    headers.append("Message-ID: " + _message_id(message_id))
    language = check_header_value("Content-Language", letter.language).strip()
    if language:
        if not _LANGUAGE_TAG.fullmatch(language):
            raise MessageError(f"Content-Language: {language!r} is not a language tag")
        headers.append("Content-Language: " + language)
    headers.append("MIME-Version: 1.0")
    for name, value in (extra_headers or {}).items():
        headers.append(_extra_header(name, value))

    if parts is None:
        parts = letter_parts(
            letter,
            organisation=organisation or organisation_name(sender, settings),
            letter_date=letter_date or letter.letter_date or sent_at.date(),
        )
    transfer_encoding = ""
    if parts.html or attachments:
        content_type, body = _multipart(
            "alternative",
            [_text_part(parts.text, eight_bit), _body_part("html", parts.html, eight_bit)],
        )
    else:
        # No HTML given (an answer typed by staff): one text/plain part, as mail clients send;
        # its type and encoding become the message's own headers (no re-parsing of a part).
        content_type, cte, body = _encoded_body(
            "plain", flow(parts.text), eight_bit, _FLOWED_PARAMS
        )
        transfer_encoding = f"Content-Transfer-Encoding: {cte}"
    if attachments:
        inner = f"Content-Type: {content_type}\r\n\r\n".encode("ascii") + body
        content_type, body = _multipart(
            "mixed", [inner, *(_attachment_part(item) for item in attachments)]
        )
    headers.append(_fold("Content-Type", content_type.split(" ")))
    if transfer_encoding:
        headers.append(transfer_encoding)
    head = "\r\n".join(headers) + "\r\n\r\n"
    return head.encode("ascii") + body


def build_notice(
    to: str,
    subject: str,
    text: str,
    *,
    sender: str,
    language: str = "en",
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """A plain-text e-mail from the application to one person: a signer's confirmation, an
    invitation, a password reset, a staff reminder. Attachments are (filename, MIME type
    "type/subtype", bytes).

    These are few, so they go through the stdlib (its SMTP policy) rather than the letters'
    fast builder above. Header values are set through the e-mail library, which refuses CR/LF
    in them: a name typed by a stranger cannot add headers.
    """
    # The SMTP policy writes CRLF line ends: with bare LF some servers read the whole
    # message as one overlong line ("500 Line too long").
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    domain = sender.rsplit("@", 1)[-1].strip("> ") or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # no out-of-office answers, please
    # The language's typography (French spaces, Russian quotes, no "2026 г.."), then
    # wrapped at 72 as format=flowed like the letters (campaign.letters.flowed); the
    # stdlib's quoted-printable keeps the soft breaks' trailing spaces as "=20".
    message.set_content(flow(typeset(text, language)), params=dict(CONTENT_TYPE_PARAMS))
    message["Content-Language"] = language  # after set_content, which would remove it
    for filename, mime_type, data in attachments:
        maintype, _, subtype = mime_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


# --- sending ---------------------------------------------------------------------------------


class SendError(MessageError):
    """The SMTP server did not take the message; the text says what it answered."""


def send_message(data: bytes, *, sender: str, recipients: Sequence[str]) -> None:
    """Send ready-built message bytes through the configured SMTP server (CAMPAIGN_MAIL_*).

    For single messages such as a test letter to oneself; campaigns send in batches over
    pooled connections (a later issue).
    """
    import smtplib

    from flask_babel import gettext

    from campaign.smtp import logs_in_in_clear
    from campaign.tls import TlsFailure, client_context

    settings = _settings()
    host, port = str(settings["MAIL_SERVER"]), int(settings["MAIL_PORT"])
    from campaign.dkim import DkimError, DkimSigningError, default_signer

    try:
        signer = default_signer(settings)
        if signer is not None:  # CAMPAIGN_DKIM_*: told to sign, it never goes unsigned
            data = signer.sign(data)
    except (DkimError, DkimSigningError) as error:
        raise SendError(f"not sent: {error}") from None
    envelope_from = _split_mailbox(sender)[1] or sender
    security = "ssl" if settings.get("MAIL_USE_SSL") or settings.get("MAIL_USE_TLS") else "none"
    if logs_in_in_clear(security, str(settings.get("MAIL_USERNAME") or ""), host):
        # Nothing is connected: the password would cross the network in clear.
        raise SendError(
            gettext(
                "the mail server %(server)s was not used: the default SMTP account logs in "
                "without TLS to a server that is not this machine, so the password would cross "
                "the network in clear. Set CAMPAIGN_MAIL_USE_TLS or CAMPAIGN_MAIL_USE_SSL",
                server=f"{host}:{port}",
            )
        )
    try:
        if settings.get("MAIL_USE_SSL"):
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, timeout=30, context=client_context()
            )
        else:
            client = smtplib.SMTP(host, port, timeout=30)
        with client:
            if settings.get("MAIL_USE_TLS") and not settings.get("MAIL_USE_SSL"):
                client.starttls(context=client_context())
            if settings.get("MAIL_USERNAME"):
                client.login(str(settings["MAIL_USERNAME"]), str(settings.get("MAIL_PASSWORD", "")))
            client.sendmail(envelope_from, list(recipients), data)
    except (OSError, smtplib.SMTPException, TlsFailure) as error:
        # Never the password: only the server's address and its answer.
        raise SendError(
            f"the mail server {host}:{port} did not take the message ({error})"
        ) from None
