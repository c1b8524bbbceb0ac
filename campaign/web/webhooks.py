"""Webhooks (admins): endpoints, their deliveries, "Resend", and hosts allowed on private addresses.

Services: campaign.services.webhooks.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.labels import LABELS, label
from campaign.models import Role, WebhookDelivery, WebhookEndpoint, WebhookEventType, utcnow
from campaign.services.webhooks import delivery as webhook_delivery
from campaign.services.webhooks import endpoints as webhooks
from campaign.services.webhooks.endpoints import WebhookInputError
from campaign.services.webhooks.payloads import FIELDS
from campaign.web.access import allow, signed_in_user

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

_HOST_AND_TOKEN = re.compile(r"(?P<host>.+?) \((?P<cause>[^()]*)\)")
_UNTRUSTED_AUTHORITY = {"18", "19", "20", "21"}  # OpenSSL's "unable to get issuer" and kin


def error_code(stored: str) -> str:
    """The code of a stored error ("blocked_address: …" → "blocked_address")."""
    return stored.partition(": ")[0]


def _sentence(code: str, detail: str) -> str | None:
    """The stored error (services/webhooks/delivery.SendFailure) as a translated sentence;
    None when its detail has not the expected form (a row written by an older version)."""
    parsed = _HOST_AND_TOKEN.fullmatch(detail)
    host, cause = (parsed["host"], parsed["cause"]) if parsed else (detail, "")
    if code == "blocked_address" and " → " in detail:
        host, addresses = detail.split(" → ", 1)
        return _(
            "%(host)s leads to a private, loopback or link-local address (%(addresses)s), "
            "refused unless the host is allowed: add %(host)s to “Hosts allowed on private "
            "addresses” on the Webhooks page if the receiver is inside your own network.",
            host=host,
            addresses=addresses,
        )
    if code == "dns" and detail:
        if cause in {"EAI_AGAIN", "timeout"}:  # no answer, or none within DNS_TIMEOUT
            return _("The name server gave no answer for %(host)s this time.", host=host)
        return _("The host name %(host)s was not found.", host=host)
    if code == "connect" and parsed:
        if cause == "ECONNREFUSED":
            return _("%(host)s refused the connection: nothing answers on that port.", host=host)
        if cause in {"ECONNRESET", "RemoteDisconnected", "EPIPE"}:
            return _("%(host)s closed the connection without answering.", host=host)
        if cause in {"EHOSTUNREACH", "ENETUNREACH"}:
            return _("%(host)s cannot be reached from this server.", host=host)
        return _("The connection to %(host)s failed (%(reason)s).", host=host, reason=cause)
    if code == "tls" and parsed:
        reason, _colon, verify_code = cause.partition(":")
        if verify_code == "10":
            return _("The certificate of %(host)s has expired.", host=host)
        if verify_code == "62":
            return _("The certificate of %(host)s is for another name.", host=host)
        if verify_code in _UNTRUSTED_AUTHORITY:
            return _(
                "The certificate of %(host)s comes from an authority this server does not "
                "trust (see CAMPAIGN_WEBHOOK_CA_FILE).",
                host=host,
            )
        return _(
            "The secure connection to %(host)s was refused (%(reason)s).", host=host, reason=reason
        )
    if code == "timeout" and cause == "connect":
        return _(
            "%(host)s did not accept the connection within %(seconds)d s.",
            host=host,
            seconds=webhook_delivery.CONNECT_TIMEOUT,
        )
    if code == "timeout" and cause == "answer":
        return _(
            "%(host)s did not answer within %(seconds)d s.",
            host=host,
            seconds=webhook_delivery.TOTAL_TIMEOUT,
        )
    if code == "redirect" and " → " in detail:
        status, location = detail.split(" → ", 1)
        return _(
            "The endpoint answered %(status)s, a redirection to %(location)s, which is not "
            "followed: enter the final address.",
            status=status,
            location=location or "—",
        )
    if code == "http_status" and detail.isdigit():
        return _("The endpoint answered with an error (HTTP %(status)s).", status=detail)
    if code == "invalid_url":
        return _("The address %(url)s cannot be used.", url=detail)
    if code == "internal" and detail == "gone":
        return _("The endpoint or the event no longer exists.")
    if code == "internal":
        return _(
            "An error on this server prevented sending (%(reason)s); its log says more.",
            reason=detail or "—",
        )
    return None


def error_text(stored: str) -> str:
    """A delivery's last error in a translated sentence (the label and the detail, for a row
    written by an older version)."""
    if not stored:
        return ""
    code, _sep, detail = stored.partition(": ")
    if code not in LABELS["webhook_error"]:
        return stored
    sentence = _sentence(code, detail)
    if sentence is not None:
        return sentence
    words = label(code, "webhook_error")
    return _("%(label)s: %(detail)s", label=words, detail=detail) if detail else words


def _warn_if_private(url: str) -> None:
    """Saved, but a private host not on the allow-list will be refused at each connection."""
    host = urlsplit(url).hostname or ""
    addresses = webhook_delivery.blocked_addresses(host, allowed=webhooks.allowed_hosts())
    if addresses:
        flash(
            _(
                "Saved, but %(host)s leads to a private, loopback or link-local address "
                "(%(addresses)s): its deliveries will be refused until %(host)s is added to "
                "“Hosts allowed on private addresses” on the Webhooks page.",
                host=host,
                addresses=", ".join(addresses),
            ),
            "warning",
        )


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    return db.get_or_404(WebhookEndpoint, endpoint_id)


def _form(
    endpoint: WebhookEndpoint | None, form: dict[str, Any], error: str = "", field: str = ""
) -> Any:
    return render_template(
        "webhooks/form.html",
        endpoint=endpoint,
        form=form,
        event_types=[kind.value for kind in WebhookEventType],
        error=error,
        error_field=field,
    ), (422 if error else 200)


def _posted() -> dict[str, Any]:
    return {
        "url": request.form.get("url", ""),
        "description": request.form.get("description", ""),
        "event_types": request.form.getlist("event_types"),
    }


def _index(allowed_text: str | None = None, error: str = "") -> Any:
    return render_template(
        "webhooks/index.html",
        endpoints=webhooks.list_endpoints(),
        allowed_hosts=(
            "\n".join(sorted(webhooks.allowed_hosts())) if allowed_text is None else allowed_text
        ),
        allowed_hosts_error=error,
        payload_fields=FIELDS,
    ), (422 if error else 200)


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    return _index()


@bp.route("/new", methods=["GET", "POST"])
@allow(Role.ADMIN)
def new() -> Any:
    if request.method == "GET":
        return _form(None, {"url": "", "description": "", "event_types": []})
    form = _posted()
    try:
        endpoint, secret = webhooks.create_endpoint(
            form["url"], form["event_types"], form["description"], actor=signed_in_user()
        )
    except WebhookInputError as error:
        db.session.rollback()
        return _form(None, form, str(error), error.field)
    db.session.commit()
    _warn_if_private(endpoint.url)
    # Shown once here; later only on an admin's request (audited).
    return render_template("webhooks/secret.html", endpoint=endpoint, secret=secret, is_new=True)


@bp.route("/<int:endpoint_id>/edit", methods=["GET", "POST"])
@allow(Role.ADMIN)
def edit(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    if request.method == "GET":
        return _form(
            endpoint,
            {
                "url": endpoint.url,
                "description": endpoint.description,
                "event_types": endpoint.event_types,
            },
        )
    form = _posted()
    try:
        webhooks.update_endpoint(
            endpoint, form["url"], form["event_types"], form["description"], actor=signed_in_user()
        )
    except WebhookInputError as error:
        db.session.rollback()
        return _form(endpoint, form, str(error), error.field)
    db.session.commit()
    flash(_("Endpoint saved."), "success")
    _warn_if_private(endpoint.url)
    return redirect(url_for("webhooks.index"))


@bp.route("/<int:endpoint_id>/enabled", methods=["POST"])
@allow(Role.ADMIN)
def set_enabled(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    enabled = request.form.get("enabled") == "1"
    webhooks.set_enabled(endpoint, enabled, actor=signed_in_user())
    db.session.commit()
    flash(_("Endpoint enabled.") if enabled else _("Endpoint disabled."), "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/<int:endpoint_id>/delete", methods=["POST"])
@allow(Role.ADMIN)
def delete(endpoint_id: int) -> Any:
    webhooks.delete_endpoint(_endpoint(endpoint_id), actor=signed_in_user())
    db.session.commit()
    flash(_("Endpoint deleted."), "success")
    return redirect(url_for("webhooks.index"))


@bp.route("/<int:endpoint_id>/secret", methods=["POST"])
@allow(Role.ADMIN)
def secret(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    shown = webhooks.reveal_secret(endpoint, actor=signed_in_user())
    db.session.commit()
    return render_template("webhooks/secret.html", endpoint=endpoint, secret=shown, is_new=False)


@bp.route("/<int:endpoint_id>")
@allow(Role.ADMIN)
def deliveries(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    return render_template(
        "webhooks/deliveries.html",
        endpoint=endpoint,
        deliveries=webhooks.deliveries_of(endpoint.id),
        next_in_turn=webhooks.next_in_turn(endpoint.id),
        error_text=error_text,
        error_code=error_code,
        now=utcnow(),
    )


@bp.route("/deliveries/<int:delivery_id>/resend", methods=["POST"])
@allow(Role.ADMIN)
def resend(delivery_id: int) -> Any:
    delivery = db.get_or_404(WebhookDelivery, delivery_id)
    webhooks.resend(delivery, actor=signed_in_user())
    db.session.commit()
    flash(_("The event will be sent again, in its turn."), "success")
    return redirect(url_for("webhooks.deliveries", endpoint_id=delivery.endpoint_id))


@bp.route("/allowed-hosts", methods=["POST"])
@allow(Role.ADMIN)
def allowed_hosts() -> Any:
    text = request.form.get("allowed_hosts", "")
    try:
        webhooks.set_allowed_hosts(text, actor=signed_in_user())
    except WebhookInputError as error:
        db.session.rollback()
        return _index(text, str(error))  # the entries stay in the box, to be corrected
    db.session.commit()
    flash(_("Allowed hosts saved."), "success")
    return redirect(url_for("webhooks.index"))
