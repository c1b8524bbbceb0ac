"""SMTP accounts (admins): add and edit relays and their limits; passwords never shown."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("smtp_accounts", __name__, url_prefix="/smtp-accounts")
