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

import hmac
from collections.abc import Callable, Iterable
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import exists, select

from campaign.config import write_new_key
from campaign.extensions import db
from campaign.models import Suppression, SuppressionReason

KEY_FILE = "erasure_key"
PREFIX = "erased:"


class ErasureKeyMissing(RuntimeError):
    """Erased entries exist but the instance folder has no `erasure_key` to test them with."""


def key_path() -> Path:
    """Where the instance keeps the erasure key."""
    return Path(current_app.config["INSTANCE_PATH"]) / KEY_FILE


def address_key(email: str) -> str:
    """The case-insensitive key of an address, exactly as Contact.email_key and the
    suppression list spell it (normalise_email's: email-validator's normal form, lower-cased,
    so a domain typed in punycode is the same address as its Unicode form); an address it
    refuses is keyed as typed, lower-cased. (Not normalise_email itself: the contacts module
    asks this leaf module at every creation point.)"""
    candidate = email.strip()
    try:
        return str(validate_email(candidate, check_deliverability=False).normalized).lower()
    except EmailNotValidError:
        return candidate.lower()


def _damaged(path: Path) -> ErasureKeyMissing:
    return ErasureKeyMissing(
        _(
            "The instance folder's %(file)s file is damaged (it must hold 64 hexadecimal "
            "digits): restore that file from the backup before anything is sent, imported "
            "or erased.",
            file=path.name,
        )
    )


def _read_key(path: Path) -> bytes | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        raise _damaged(path) from None
    if not text:
        return None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise _damaged(path) from None
    if len(key) != 32:
        raise _damaged(path)
    return key


def erasure_key(*, create: bool = False) -> bytes | None:
    """The instance's erasure key; made (0600) when `create` and there is none yet."""
    path = key_path()
    key = _read_key(path)
    if key is None and create:
        if has_erased():
            # A fresh key would recognise none of the earlier erasures: refuse instead.
            raise _missing()
        write_new_key(path)
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
    try:
        key = erasure_key()
    except ErasureKeyMissing:
        if not has_erased():
            return None  # a damaged file guards nobody yet; an erasure refuses to replace it
        raise
    if key is not None:
        return key
    if not has_erased():
        return None
    raise _missing()


def _missing() -> ErasureKeyMissing:
    return ErasureKeyMissing(
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


def _key_if_any() -> bytes | None:
    """The key when this instance ever erased someone (its file exists), without a query;
    None otherwise, or when the file is damaged (launch and import say so in words)."""
    try:
        return erasure_key()
    except ErasureKeyMissing:
        return None


def erased_entry_if_any(email: str) -> Suppression | None:
    """find_erased_entry for the suppression checks every letter and copy goes through:
    nothing but a file read when nobody was ever erased here (decision 0090)."""
    key = _key_if_any()
    if key is None:
        return None
    return db.session.scalar(
        select(Suppression).where(Suppression.email_key == hashed_key(address_key(email), key))
    )


def copy_key_test() -> Callable[[str], bool] | None:
    """erased_key_test for a run of copy (Cc) addresses: None, with no query, when nobody
    was ever erased here."""
    if _key_if_any() is None:
        return None
    try:
        return erased_key_test()
    except ErasureKeyMissing:
        return None


def erased_copies(cc_emails: str, test: Callable[[str], bool] | None) -> list[str]:
    """The copy (Cc) addresses of a cleaned cc_emails value (normalised, space-separated)
    that belong to people erased on request; [] without a test (nobody erased)."""
    if test is None or not cc_emails:
        return []
    return [address for address in cc_emails.split() if test(address.lower())]


def erased_copy_reason(addresses: Iterable[str]) -> str:
    """Why erased copy addresses are refused, in words (the cc_emails field); without
    addresses (an import's rejects file, which must not hold them) the words alone."""
    shown = list(addresses)
    if not shown:
        return _(
            "a copy address belongs to a person erased on request, who is never written to "
            "again, not even as a copy; remove it from the copy addresses"
        )
    return _(
        "%(addresses)s: belongs to a person erased on request, who is never written to "
        "again, not even as a copy; remove it from the copy addresses",
        addresses=", ".join(shown),
    )
