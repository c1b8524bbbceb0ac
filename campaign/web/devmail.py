"""The development mailbox: what the local SMTP sink received, listed and shown safely."""

from __future__ import annotations

from io import BytesIO
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, send_file

from campaign.devmail import (
    LOOPBACK_HOSTS,
    StoredMessage,
    attachment_content,
    html_source,
    list_messages,
    read_message,
    safe_download_name,
)
from campaign.models import Role
from campaign.web.access import allow

bp = Blueprint("devmail", __name__, url_prefix="/devmail")
# Senders and admins only: the mailbox holds sign-on confirmation and password-reset links,
# which would let anyone who reads them act as someone else.

# The HTML part is the sender's markup, shown as the recipient's mail program would: its own
# inline styles and pictures, but no script, no form, no network fetch (no tracking pixel,
# no remote font), a unique origin (sandbox), and framed by our own pages only.
HTML_FRAME_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: cid:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)


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


def _message(key: str) -> StoredMessage:
    message = read_message(_config().devmail_path, key)
    if message is None:
        abort(404)
    return message


@bp.route("/<key>")
@allow(Role.SENDER)
def show(key: str) -> Any:
    message = _message(key)
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


@bp.route("/<key>/html")
@allow(Role.SENDER)
def html(key: str) -> Any:
    """The HTML part as its own document, for the message page's sandboxed frame only."""
    message = _message(key)
    if not message.has_html:
        abort(404)
    response = Response(html_source(message), mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_FRAME_POLICY
    response.headers["Content-Disposition"] = "inline"
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/<key>/attachments/<int:index>")
@allow(Role.SENDER)
def attachment(key: str, index: int) -> Any:
    found = attachment_content(_message(key), index)
    if found is None:
        abort(404)
    part, data = found
    # Always saved, never opened in the app's origin: whatever the sender declared, the
    # browser gets bytes to save (nosniff keeps it from guessing otherwise).
    response = send_file(
        BytesIO(data),
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=safe_download_name(part.filename, f"attachment-{index + 1}"),
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response
