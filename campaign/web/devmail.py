"""The development mailbox: what the local SMTP sink received, listed and shown safely."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template

from campaign.devmail import LOOPBACK_HOSTS, html_source, list_messages, read_message
from campaign.models import Role
from campaign.web.access import allow

bp = Blueprint("devmail", __name__, url_prefix="/devmail")
# Senders and admins only: the mailbox holds sign-on confirmation and password-reset links,
# which would let anyone who reads them act as someone else.


def _config() -> Any:
    return current_app.config["CAMPAIGN_CONFIG"]


@bp.route("/")
@allow(Role.SENDER)
def index() -> Any:
    config = _config()
    return render_template(
        "devmail/index.html",
        messages=list_messages(config.devmail_path),
        sink_in_use=config.MAIL_SERVER in LOOPBACK_HOSTS,
        config=config,
    )


@bp.route("/<key>")
@allow(Role.SENDER)
def show(key: str) -> Any:
    message = read_message(_config().devmail_path, key)
    if message is None:
        abort(404)
    return render_template(
        "devmail/show.html",
        message=message,
        html=html_source(message) if message.has_html else "",
    )


@bp.route("/<key>/raw")
@allow(Role.SENDER)
def raw(key: str) -> Any:
    message = read_message(_config().devmail_path, key)
    if message is None:
        abort(404)
    response = Response(message.raw, mimetype="message/rfc822")
    # Always a download: the browser must never render a received message as a page.
    response.headers["Content-Disposition"] = f'attachment; filename="{key}.eml"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
