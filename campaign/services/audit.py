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
) -> AuditEvent:
    """Append one event; the actor and address default to the current request's."""
    if actor is None and has_request_context() and current_user.is_authenticated:
        actor = current_user._get_current_object()
    if not has_request_context():
        remote_addr = "cli"
    elif current_user.is_authenticated:
        remote_addr = request.remote_addr or ""
    else:
        # A member of the public (a signer on a sign-on page): their network, never their
        # address — a withheld co-signer must not be traceable through the audit log.
        remote_addr = ip_prefix(request.remote_addr)
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
