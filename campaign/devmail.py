"""The development SMTP sink: an aiosmtpd server that files every message in a Maildir."""

from __future__ import annotations

import asyncio
import email
import email.policy
import mailbox
import re
import socket
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# A message larger than this is refused: the sink is for looking at letters, not a file store.
MAX_MESSAGE_BYTES = 50 * 1024 * 1024
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# Maildir keys are "<seconds>.<unique>.<host>"; anything else never reaches the filesystem.
_KEY = re.compile(r"^[A-Za-z0-9._:,=-]{1,200}$")


class DevmailError(RuntimeError):
    """The sink cannot be started as configured."""


class MaildirHandler:
    """aiosmtpd handler: store the message as received, with the envelope on top."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.maildir = mailbox.Maildir(directory, create=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        # Return-Path and Delivered-To keep the envelope (Bcc recipients included) visible.
        prefix = f"Return-Path: <{envelope.mail_from or ''}>\r\n"
        for recipient in envelope.rcpt_tos:
            prefix += f"Delivered-To: {recipient}\r\n"
        self.maildir.add(prefix.encode("utf-8", "surrogateescape") + content)
        return "250 Message accepted for delivery"


class DevmailSink:
    """The SMTP sink on a loopback address; start() and stop() are idempotent."""

    def __init__(self, directory: Path, host: str = "localhost", port: int = 8025) -> None:
        if host not in LOOPBACK_HOSTS:
            raise DevmailError(
                f"the development mail sink listens on loopback only, not on {host!r}; "
                "set CAMPAIGN_MAIL_SERVER=localhost (production uses a real SMTP relay)"
            )
        self.directory = directory
        self.host = "127.0.0.1" if host == "localhost" else host
        self.port = port
        self._controller: Controller | None = None

    def _port_error(self, error: OSError) -> DevmailError:
        return DevmailError(
            f"cannot listen on {self.host}:{self.port} for the development mail sink "
            f"({error}); is another copy running? Set CAMPAIGN_MAIL_PORT to another port."
        )

    def _check_port_free(self) -> None:
        # aiosmtpd only reports a bind failure after its whole ready timeout; ask first.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as error:
                raise self._port_error(error) from None

    def start(self) -> None:
        if self._controller is not None:
            return
        self._check_port_free()
        loop = asyncio.new_event_loop()
        controller = Controller(
            MaildirHandler(self.directory),
            loop=loop,
            hostname=self.host,
            port=self.port,
            data_size_limit=MAX_MESSAGE_BYTES,
            # The decoded "Subject: …" log lines would put message content in the dev log.
            decode_data=False,
            ready_timeout=10.0,
        )
        try:
            controller.start()
        except (OSError, TimeoutError) as error:
            # The loop's thread has ended without closing it; close it so no socket leaks.
            controller.stop(no_assert=True)
            loop.close()
            problem = error if isinstance(error, OSError) else OSError(str(error))
            raise self._port_error(problem) from None
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> DevmailSink:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def sink_for(config: Any) -> DevmailSink:
    """The sink a Config (or app.config["CAMPAIGN_CONFIG"]) describes."""
    return DevmailSink(config.devmail_path, config.MAIL_SERVER, int(config.MAIL_PORT))


# --- Reading what the sink stored -----------------------------------------------------


@dataclass(frozen=True)
class MessageSummary:
    key: str
    sender: str
    recipients: str
    subject: str
    date: datetime | None
    received_at: datetime
    size: int


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int


@dataclass
class StoredMessage:
    summary: MessageSummary
    headers: list[tuple[str, str]]
    text: str
    # True when `text` was made from the HTML part because there was no plain-text part.
    text_from_html: bool
    has_html: bool
    attachments: list[Attachment] = field(default_factory=list)
    raw: bytes = b""


def _maildir(directory: Path) -> mailbox.Maildir:
    return mailbox.Maildir(directory, create=True)


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):
        # A malformed header must not take the mailbox page down; show it undecoded.
        value = message.get_all(name, failobj=[""])[0] if message.get_all(name) else ""
    return " ".join(str(value or "").split())


def _date(message: EmailMessage) -> datetime | None:
    raw = message.get("Date")
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _summary(key: str, path: Path, message: EmailMessage, size: int) -> MessageSummary:
    return MessageSummary(
        key=key,
        sender=_header(message, "From"),
        recipients=_header(message, "To"),
        subject=_header(message, "Subject"),
        date=_date(message),
        received_at=datetime.fromtimestamp(path.stat().st_mtime, UTC),
        size=size,
    )


def _message_path(directory: Path, key: str) -> Path | None:
    if not _KEY.match(key) or key.startswith("."):
        return None
    for sub in ("new", "cur"):
        for candidate in (directory / sub).glob(key + "*"):
            # Files in cur/ carry ":2,FLAGS" after the key; nothing else may match.
            if candidate.name == key or candidate.name.startswith(key + ":"):
                return candidate
    return None


def list_messages(directory: Path, limit: int = 500) -> list[MessageSummary]:
    """Return the newest `limit` stored messages, newest first."""
    box = _maildir(directory)
    paths: list[tuple[float, str, Path]] = []
    for key in box.iterkeys():
        path = _message_path(directory, key)
        if path is not None:
            paths.append((path.stat().st_mtime, key, path))
    # Keys begin with the arrival time, so they break mtime ties in arrival order.
    paths.sort(key=lambda item: (item[0], item[1]), reverse=True)
    summaries = []
    for _mtime, key, path in paths[:limit]:
        raw = path.read_bytes()
        # Only the header block is parsed for the list: bodies can be large.
        head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
        summaries.append(_summary(key, path, _parse(head + b"\r\n\r\n"), len(raw)))
    return summaries


def read_message(directory: Path, key: str) -> StoredMessage | None:
    """Return one stored message, or None when `key` names none."""
    path = _message_path(directory, key)
    if path is None:
        return None
    raw = path.read_bytes()
    message = _parse(raw)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    text_from_html = False
    if text_part is not None:
        text = part_text(text_part)
    elif html_part is not None:
        text = html_to_text(part_text(html_part))
        text_from_html = True
    else:
        text = ""
    attachments = [
        Attachment(
            filename=part.get_filename() or "(no name)",
            content_type=part.get_content_type(),
            size=len(part.get_payload(decode=True) or b""),
        )
        for part in message.iter_attachments()
        if isinstance(part, MIMEPart)
    ]
    headers = header_items(message)
    return StoredMessage(
        summary=_summary(key, path, message, len(raw)),
        headers=headers,
        text=text,
        text_from_html=text_from_html,
        has_html=html_part is not None,
        attachments=attachments,
        raw=raw,
    )


def header_items(message: EmailMessage) -> list[tuple[str, str]]:
    """Every header in order, repeated ones included, decoded where possible."""
    items = []
    for name, raw in message.raw_items():
        try:
            value = str(message.policy.header_fetch_parse(name, raw))
        except (ValueError, IndexError, TypeError):
            value = str(raw)  # malformed: show it undecoded rather than fail the page
        items.append((name, " ".join(value.split())))
    return items


def part_text(part: MIMEPart) -> str:
    """A text part decoded; with a wrong or unknown charset, what can be read of it."""
    try:
        content = part.get_content()
    except (LookupError, ValueError):
        # Unknown or wrong charset: show what we can rather than nothing.
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return content if isinstance(content, str) else content.decode("utf-8", "replace")


class _TextExtractor(HTMLParser):
    _SKIP = {"script", "style", "head", "title"}
    _BREAK = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BREAK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Return the readable text of an HTML body (tags dropped, scripts and styles skipped)."""
    extractor = _TextExtractor()
    extractor.feed(html)
    extractor.close()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).splitlines()]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def attachment_content(message: StoredMessage, index: int) -> tuple[Attachment, bytes] | None:
    """The `index`-th attachment (as listed) and its decoded bytes; None if there is none."""
    parts = [part for part in _parse(message.raw).iter_attachments() if isinstance(part, MIMEPart)]
    if not 0 <= index < len(parts) or index >= len(message.attachments):
        return None
    payload = parts[index].get_payload(decode=True)
    return message.attachments[index], payload if isinstance(payload, bytes) else b""


# Path separators, control characters and quotes never reach a download's file name.
_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def safe_download_name(filename: str, fallback: str = "attachment") -> str:
    """A file name a browser saves as given: no directory, no control character, no dot start,
    and no invisible format character (Unicode Cf: a right-to-left override turns
    "letter\u202egpj.exe" into what reads as "letterexe.jpg")."""
    visible = "".join(char for char in filename if unicodedata.category(char) != "Cf")
    name = " ".join(_UNSAFE_NAME.sub("_", visible).split()).strip(". ")
    return name[:150] or fallback


def html_source(message: StoredMessage) -> str:
    """The HTML part's source, for showing as escaped text (never rendered)."""
    html_part = _parse(message.raw).get_body(preferencelist=("html",))
    return part_text(html_part) if html_part is not None else ""
