"""Encrypt secrets at rest (SMTP passwords) with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted: SECRET_KEY changed since it was saved."""


def _fernet(secret_key: str | None = None) -> Fernet:
    key_material = (secret_key or str(current_app.config["SECRET_KEY"])).encode()
    # A separate key for this purpose: the session-signing key itself never encrypts data.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"campaign smtp secrets"
    ).derive(key_material)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(plain: str) -> str:
    return _fernet().encrypt(plain.encode()).decode("ascii") if plain else ""


def decrypt_secret(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the stored password cannot be read (was CAMPAIGN_SECRET_KEY changed?); "
            "enter the password again"
        ) from None
