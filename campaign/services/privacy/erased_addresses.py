"""Erased addresses: the keyed hashes that stop anyone writing to a person erased on request.

An erased person's address is not kept anywhere. The suppression list keeps, in its place,
HMAC-SHA256 of the address's key (the form Contact.email_key holds) under a random key kept
in the instance folder file `erasure_key` (0600, made once, like `secret_key`): the entry's
email_key is "erased:" + the hex digest and its email is "". Whoever has the database alone
cannot test a guessed address against it; whoever has the key file too can, which is what
the application itself does (decision 0090).

This module is a leaf (models, extensions and libraries only), so that every creation point
(contacts, import, API, sign-on, launch) may ask it without an import circle.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import exists, select

from campaign.extensions import db
from campaign.models import Suppression, SuppressionReason

KEY_FILE = "erasure_key"
PREFIX = "erased:"
# A plain ASCII address: its key is its lower-case form (as normalise_email gives it).
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")


class ErasureKeyMissing(RuntimeError):
    """Erased entries exist but the instance folder has no `erasure_key` to test them with."""


def key_path() -> Path:
    """Where the instance keeps the erasure key."""
    return Path(current_app.config["INSTANCE_PATH"]) / KEY_FILE


def address_key(email: str) -> str:
    """The case-insensitive key of an address, as Contact.email_key and the suppression list
    spell it (an address email-validator refuses is keyed as typed, lower-cased)."""
    candidate = email.strip()
    if _PLAIN.fullmatch(candidate):
        return candidate.lower()
    try:
        return str(validate_email(candidate, check_deliverability=False).normalized).lower()
    except EmailNotValidError:
        return candidate.lower()


def _read_key(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return bytes.fromhex(text) if text else None


def _write_key(path: Path) -> None:
    """A new random key at `path` (0600), unless another process wrote one first."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        # A hard link appears whole or not at all: two erasures at once agree on one key.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def erasure_key(*, create: bool = False) -> bytes | None:
    """The instance's erasure key; made (0600) when `create` and there is none yet."""
    path = key_path()
    key = _read_key(path)
    if key is None and create:
        _write_key(path)
        key = _read_key(path)
    return key


def hashed_key(email_key: str, key: bytes) -> str:
    """The suppression list's email_key for an erased address's key."""
    # hmac.digest: OpenSSL's one-shot HMAC, ~40 % faster than hmac.new (a launch hashes
    # every recipient once anyone was erased).
    return PREFIX + hmac.digest(key, email_key.encode("utf-8"), "sha256").hex()


def has_erased() -> bool:
    """Whether anyone was ever erased here (one probe of the suppression list)."""
    return bool(
        db.session.scalar(
            select(exists().where(Suppression.reason == SuppressionReason.ERASED.value))
        )
    )


def _usable_key() -> bytes | None:
    """The key to test addresses with; None when nobody was erased. Raises
    ErasureKeyMissing when entries exist without their key (a restore that left the file
    behind): writing to an erased person by mistake is worse than refusing to write."""
    key = erasure_key()
    if key is not None:
        return key
    if not has_erased():
        return None
    raise ErasureKeyMissing(
        _(
            "The suppression list holds erased addresses but the instance folder has no "
            "%(file)s file to recognise them with: restore that file from the backup "
            "before anything is sent or imported.",
            file=KEY_FILE,
        )
    )


def erased_key_test() -> Callable[[str], bool] | None:
    """A test of address keys (the Contact.email_key form) against the erased entries, read
    once; None when nobody was erased, so that callers skip the test altogether."""
    key = _usable_key()
    if key is None:
        return None
    hashes = set(
        db.session.scalars(
            select(Suppression.email_key).where(
                Suppression.reason == SuppressionReason.ERASED.value
            )
        )
    )
    if not hashes:
        return None
    return lambda email_key: hashed_key(email_key, key) in hashes


def is_erased(email: str) -> bool:
    """Whether `email` belongs to a person erased on request."""
    key = _usable_key()
    if key is None:
        return False
    return bool(
        db.session.scalar(
            select(exists().where(Suppression.email_key == hashed_key(address_key(email), key)))
        )
    )


def erased_among(emails: Iterable[str]) -> set[str]:
    """The addresses among `emails` that belong to people erased on request."""
    test = erased_key_test()
    if test is None:
        return set()
    return {email for email in emails if test(address_key(email))}


def find_erased_entry(email: str) -> Suppression | None:
    """The suppression list's erased entry for `email`, if any."""
    key = _usable_key()
    if key is None:
        return None
    return db.session.scalar(
        select(Suppression).where(Suppression.email_key == hashed_key(address_key(email), key))
    )


def erased_reason() -> str:
    """Why an erased address is refused, in words (import rows, API items, the contact form)."""
    return _(
        "this address belongs to a person erased on request; it is on the suppression list "
        "and is never written to again (an administrator can take it off the list if the "
        "person asks to be added back)"
    )
