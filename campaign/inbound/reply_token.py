"""Per-delivery reply addresses ("replies+<token>@example.org") and reading them back.

Thread headers are the first way to match a reply, but some mail clients and gateways
drop them; an address with a token survives that. The token is the delivery's id and an
HMAC of it, so it cannot be guessed or forged to attach mail to someone else's letter.
"""

from __future__ import annotations

import hashlib
import hmac
from email.utils import getaddresses

from flask import current_app

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
_SIGNATURE_LENGTH = 12


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, remainder = divmod(number, 36)
        digits = _ALPHABET[remainder] + digits
        if number == 0:
            return digits


def _signature(delivery_id: int) -> str:
    key = f"reply-token:{current_app.config['SECRET_KEY']}".encode()
    digest = hmac.new(key, str(delivery_id).encode(), hashlib.sha256).hexdigest()
    return digest[:_SIGNATURE_LENGTH]


def reply_token(delivery_id: int) -> str:
    return f"{_base36(delivery_id)}-{_signature(delivery_id)}"


def reply_address(delivery_id: int) -> str | None:
    """The tokenised Reply-To for this delivery, or None when CAMPAIGN_REPLY_ADDRESS is unset."""
    configured = str(current_app.config.get("REPLY_ADDRESS") or "").strip()
    if "@" not in configured:
        return None
    local, domain = configured.rsplit("@", 1)
    return f"{local}+{reply_token(delivery_id)}@{domain}"


def delivery_id_from_token(token: str) -> int | None:
    """The delivery id a token names, or None when it is malformed or its HMAC is wrong."""
    number, _, signature = token.strip().lower().partition("-")
    if not number or len(number) > 12 or any(char not in _ALPHABET for char in number):
        return None
    delivery_id = int(number, 36)
    if not hmac.compare_digest(signature, _signature(delivery_id)):
        return None
    return delivery_id


def delivery_id_in(header_values: list[str]) -> int | None:
    """The first valid reply token in these address headers (To, Cc, Delivered-To ...)."""
    configured = str(current_app.config.get("REPLY_ADDRESS") or "").strip().lower()
    if "@" not in configured:
        return None
    local, domain = configured.rsplit("@", 1)
    for _name, address in getaddresses(header_values):
        address_local, _, address_domain = address.strip().lower().rpartition("@")
        prefix = f"{local}+"
        if address_domain != domain or not address_local.startswith(prefix):
            continue
        found = delivery_id_from_token(address_local[len(prefix) :])
        if found is not None:
            return found
    return None
