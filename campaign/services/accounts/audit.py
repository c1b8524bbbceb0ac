"""Recording events in the append-only audit log."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_login import current_user

from campaign.extensions import db
from campaign.models import AuditEvent, User
from campaign.tracking.buffer import ip_prefix


def record_event(
    action: str,
    *,
    target_type: str = "",
    target_id: object = "",
    actor: User | None = None,
    detail: dict[str, Any] | None = None,
    network_only: bool = False,
) -> AuditEvent:
    """Append one event; the actor and address default to the current request's.

    `network_only` (events of members of the public, such as a signer on a sign-on page)
    keeps the client's /24 or /48, never its address: a withheld co-signer must not be
    traceable through the audit log. Staff sign-ins keep the full address.
    """
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()
    if not has_request_context():
        remote_addr = "cli"
    elif network_only:
        remote_addr = ip_prefix(request.remote_addr)
    else:
        remote_addr = request.remote_addr or ""
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else "",
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id != "" else "",
        remote_addr=remote_addr,
        detail=detail or {},
    )
    db.session.add(event)
    db.session.flush()
    return event
