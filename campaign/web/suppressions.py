"""The suppression list: who no campaign may write to, seen and edited by staff."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("suppressions", __name__, url_prefix="/suppressions")
