"""Public one-click unsubscribe (RFC 8058): no login, no CSRF, token-authenticated."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("unsubscribe", __name__)
