"""Encrypt secrets at rest (SMTP and IMAP passwords, two-factor keys) with keys derived from
SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

# One derived key per purpose (HKDF "info"): a key that leaks from one use opens nothing else.
MAIL_PASSWORDS = b"campaign smtp secrets"  # also the IMAP passwords, from before this split
TOTP_SECRETS = b"campaign totp secrets"
DKIM_KEYS = b"campaign dkim keys"  # SMTP accounts' DKIM private keys (PEM)
# Every Fernet token starts with its version byte 0x80, "gAAAAA" in URL-safe base64; a
# two-factor key in clear is base32 (A-Z, 2-7) and never does.
FERNET_PREFIX = "gAAAAA"


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted: SECRET_KEY changed since it was saved."""


def _fernet(secret_key: str | None = None, purpose: bytes = MAIL_PASSWORDS) -> Fernet:
    key_material = (secret_key or str(current_app.config["SECRET_KEY"])).encode()
    # A separate key for this purpose: the session-signing key itself never encrypts data.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        key_material
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(
    plain: str, *, purpose: bytes = MAIL_PASSWORDS, secret_key: str | None = None
) -> str:
    if not plain:
        return ""
    return _fernet(secret_key, purpose).encrypt(plain.encode()).decode("ascii")


def decrypt_secret(token: str, *, purpose: bytes = MAIL_PASSWORDS) -> str:
    if not token:
        return ""
    try:
        return _fernet(None, purpose).decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the stored password cannot be read (was CAMPAIGN_SECRET_KEY changed?); "
            "enter the password again"
        ) from None
