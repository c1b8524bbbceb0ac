"""Webhooks (admins): endpoints, their deliveries, "Resend", and hosts allowed on private addresses.

Services: campaign.services.webhooks.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.labels import LABELS, label
from campaign.models import Role, WebhookDelivery, WebhookEndpoint, WebhookEventType, utcnow
from campaign.services.webhooks import endpoints as webhooks
from campaign.services.webhooks.endpoints import WebhookInputError
from campaign.web.access import allow, signed_in_user

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def error_text(stored: str) -> str:
    """A delivery's last error in words: the label of its code, then the technical detail."""
    if not stored:
        return ""
    code, _sep, detail = stored.partition(": ")
    if code in LABELS["webhook_error"]:
        words = label(code, "webhook_error")
        return f"{words}: {detail}" if detail else words
    return stored


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        abort(404)
    return endpoint


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


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    return render_template(
        "webhooks/index.html",
        endpoints=webhooks.list_endpoints(),
        allowed_hosts="\n".join(sorted(webhooks.allowed_hosts())),
    )


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
        error_text=error_text,
        now=utcnow(),
    )


@bp.route("/deliveries/<int:delivery_id>/resend", methods=["POST"])
@allow(Role.ADMIN)
def resend(delivery_id: int) -> Any:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        abort(404)
    webhooks.resend(delivery, actor=signed_in_user())
    db.session.commit()
    flash(_("The event will be sent again, in its turn."), "success")
    return redirect(url_for("webhooks.deliveries", endpoint_id=delivery.endpoint_id))


@bp.route("/allowed-hosts", methods=["POST"])
@allow(Role.ADMIN)
def allowed_hosts() -> Any:
    try:
        webhooks.set_allowed_hosts(request.form.get("allowed_hosts", ""), actor=signed_in_user())
    except WebhookInputError as error:
        db.session.rollback()
        flash(str(error), "error")
        return redirect(url_for("webhooks.index"))
    db.session.commit()
    flash(_("Allowed hosts saved."), "success")
    return redirect(url_for("webhooks.index"))
