"""Unsubscribe links (RFC 8058) and the suppression list every send honours."""

from __future__ import annotations

from flask import current_app

DEFAULT_PUBLIC_URL = "http://127.0.0.1:5000"


def public_url() -> str:
    return (str(current_app.config.get("PUBLIC_URL") or "") or DEFAULT_PUBLIC_URL).rstrip("/")


def unsubscribe_url(token: str) -> str:
    """The https link of a delivery's List-Unsubscribe header (its token is opaque)."""
    return f"{public_url()}/u/{token}"
