"""Signed tracking tokens: which delivery opened its letter, or clicked which recorded link.

A token is `kind, campaign id, delivery id, link id` (13 bytes) and the first 14 bytes of
their HMAC-SHA256, base64url without padding: 36 characters. 112 bits of MAC cannot be
guessed, and nothing in a token can be changed without the key, so a click can name only
a link that was put into a letter by us.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

from campaign.models.tracking import TrackingKind

_PAYLOAD = struct.Struct(">BIII")  # kind, campaign id, delivery id, link id (0: none)
MAC_BYTES = 14
TOKEN_BYTES = _PAYLOAD.size + MAC_BYTES
TOKEN_LENGTH = (TOKEN_BYTES * 4 + 2) // 3  # base64 without padding
_KIND_CODES = {TrackingKind.OPEN: 1, TrackingKind.CLICK: 2}
_CODE_KINDS = {code: kind for kind, code in _KIND_CODES.items()}
_MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class TrackingToken:
    kind: TrackingKind
    campaign_id: int
    delivery_id: int
    link_id: int | None


@lru_cache(maxsize=8)
def _derived_key(secret_key: str) -> bytes:
    # A key of its own: a leaked tracking key (or a MAC oracle) says nothing about the
    # session-signing key, nor about the reply tokens' or stored secrets' keys.
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"campaign tracking tokens"
    ).derive(secret_key.encode())


def tracking_key(secret_key: str | None = None) -> bytes:
    """The key tokens are signed with (derived from `secret_key`, else the app's SECRET_KEY).

    The public routes derive it once per process and pass it to read_token as `key`.
    """
    return _derived_key(secret_key or str(current_app.config["SECRET_KEY"]))


def _mac(key: bytes, payload: bytes) -> bytes:
    # hmac.digest is OpenSSL's one-shot HMAC: no Python HMAC object per token.
    return hmac.digest(key, payload, "sha256")[:MAC_BYTES]


def make_token(
    kind: TrackingKind,
    *,
    campaign_id: int,
    delivery_id: int,
    link_id: int | None = None,
    secret_key: str | None = None,
) -> str:
    """Sign a token for one delivery's open (no link) or click on `link_id`."""
    if kind == TrackingKind.CLICK and not link_id:
        raise ValueError("a click token needs a link id")
    for value in (campaign_id, delivery_id, link_id or 0):
        if not 0 <= value <= _MAX_ID:
            raise ValueError(f"id out of range for a tracking token: {value}")
    payload = _PAYLOAD.pack(_KIND_CODES[kind], campaign_id, delivery_id, link_id or 0)
    raw = payload + _mac(tracking_key(secret_key), payload)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_token(
    token: str, *, secret_key: str | None = None, key: bytes | None = None
) -> TrackingToken | None:
    """The token's contents if we signed it, else None (garbled, tampered or foreign).

    `key` is tracking_key()'s result, when the caller keeps it (the public routes do).
    """
    if len(token) != TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    # Re-encoding must give the same text: base64 tolerates variants of the last character.
    if len(raw) != TOKEN_BYTES or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None
    payload, mac = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    if not hmac.compare_digest(mac, _mac(key or tracking_key(secret_key), payload)):
        return None
    code, campaign_id, delivery_id, link_id = _PAYLOAD.unpack(payload)
    kind = _CODE_KINDS.get(code)
    if kind is None or (kind == TrackingKind.CLICK) != bool(link_id):
        return None
    return TrackingToken(kind, campaign_id, delivery_id, link_id or None)
