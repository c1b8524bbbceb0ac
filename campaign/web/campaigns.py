"""Campaigns: build, launch and follow a campaign's sending."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")
