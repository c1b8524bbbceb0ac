"""Webhook endpoints (admins): their URL, event types and secret; the hosts allowed to be private;
resending one delivery."""

from __future__ import annotations

import base64
import ipaddress
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask_babel import gettext
from sqlalchemy import select

from campaign import clock
from campaign.extensions import db
from campaign.models import (
    InstallationSetting,
    User,
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEventType,
)
from campaign.secret_box import decrypt_secret, encrypt_secret
from campaign.services.accounts.audit import record_event
from campaign.services.webhooks.events import enqueue_delivery_job

# Its own derived key (campaign/secret_box): a leak of another kind of secret opens none of these.
WEBHOOK_SECRETS = b"campaign webhook secrets"
ALLOWED_HOSTS_SETTING = "webhook_allowed_hosts"
MAX_URL = 2000
MAX_DESCRIPTION = 200
MAX_ALLOWED_HOSTS = 50


class WebhookInputError(ValueError):
    """What is wrong with an endpoint's settings, and the field it concerns."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def new_secret() -> str:
    """A Standard Webhooks secret: "whsec_" and the base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def secret_of(endpoint: WebhookEndpoint) -> str:
    """The endpoint's secret in clear (for signing, and for an admin who asks to see it)."""
    return decrypt_secret(endpoint.secret_encrypted, purpose=WEBHOOK_SECRETS)


def check_url(url: str) -> str:
    """The URL as stored, or WebhookInputError: https only, a host, no user or password in it.

    Private and loopback addresses are refused later, at each connection, after DNS: a name
    checked here could point elsewhere by then (the page only warns at save, through
    delivery.blocked_addresses).
    """
    url = url.strip()
    if not url:
        raise WebhookInputError(gettext("Enter the endpoint's address."), "url")
    if len(url) > MAX_URL:
        raise WebhookInputError(
            gettext("The address is too long (at most %(count)d characters).", count=MAX_URL),
            "url",
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookInputError(gettext("This is not a valid address."), "url") from None
    if parts.scheme.lower() != "https":
        raise WebhookInputError(
            gettext(
                "Only https:// addresses are allowed: events must not cross the network in clear."
            ),
            "url",
        )
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise WebhookInputError(
            gettext(
                "The address must not hold a user name or password: the endpoint checks the "
                "signature instead."
            ),
            "url",
        )
    if not parts.hostname or port == 0 or any(c.isspace() for c in url):
        raise WebhookInputError(gettext("This is not a valid address."), "url")
    if parts.fragment:
        raise WebhookInputError(gettext("The address must not end with a #fragment."), "url")
    return url


def check_event_types(chosen: Iterable[str]) -> list[str]:
    known = [kind.value for kind in WebhookEventType]
    picked = set(chosen)
    unknown = picked - set(known)
    if unknown or not picked:
        raise WebhookInputError(gettext("Choose at least one event."), "event_types")
    return [kind for kind in known if kind in picked]


def _description(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DESCRIPTION:
        raise WebhookInputError(
            gettext("At most %(count)d characters.", count=MAX_DESCRIPTION), "description"
        )
    return text


def create_endpoint(
    url: str, event_types: Iterable[str], description: str = "", *, actor: User | None = None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its new secret (in clear, to show once)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(
        url=check_url(url),
        event_types=check_event_types(event_types),
        description=_description(description),
        secret_encrypted=encrypt_secret(secret, purpose=WEBHOOK_SECRETS),
        enabled=True,
        created_by_id=actor.id if actor else None,
        created_at=clock.now(),
    )
    db.session.add(endpoint)
    db.session.flush()
    record_event(
        "webhook.create",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        actor=actor,
        detail={"url": shown_url(endpoint.url), "event_types": endpoint.event_types},
    )
    return endpoint, secret


def update_endpoint(
    endpoint: WebhookEndpoint,
    url: str,
    event_types: Iterable[str],
    description: str = "",
    *,
    actor: User | None = None,
) -> None:
    """Change an endpoint's address, events and description (its secret stays)."""
    endpoint.url = check_url(url)
    endpoint.event_types = check_event_types(event_types)
    endpoint.description = _description(description)
    db.session.flush()
    record_event(
        "webhook.update",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        actor=actor,
        detail={"url": shown_url(endpoint.url), "event_types": endpoint.event_types},
    )


def set_enabled(endpoint: WebhookEndpoint, enabled: bool, *, actor: User | None = None) -> None:
    """Pause or resume an endpoint. Paused, it gets no new events; those waiting keep waiting."""
    endpoint.enabled = enabled
    db.session.flush()
    record_event(
        "webhook.enable" if enabled else "webhook.disable",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        actor=actor,
    )
    if enabled:
        enqueue_delivery_job(endpoint.id)


def delete_endpoint(endpoint: WebhookEndpoint, *, actor: User | None = None) -> None:
    """Delete an endpoint and its deliveries (the events stay for the other endpoints)."""
    record_event(
        "webhook.delete",
        target_type="webhook_endpoint",
        target_id=endpoint.id,
        actor=actor,
        detail={"url": shown_url(endpoint.url)},
    )
    db.session.execute(
        WebhookDelivery.__table__.delete().where(WebhookDelivery.endpoint_id == endpoint.id)
    )
    db.session.delete(endpoint)
    db.session.flush()


def reveal_secret(endpoint: WebhookEndpoint, *, actor: User | None = None) -> str:
    """The endpoint's secret, for an admin who asked to see it (audited)."""
    record_event(
        "webhook.reveal_secret", target_type="webhook_endpoint", target_id=endpoint.id, actor=actor
    )
    return secret_of(endpoint)


def resend(delivery: WebhookDelivery, *, actor: User | None = None) -> None:
    """Send one delivery again from its first attempt (same `webhook-id`), in its event's turn."""
    before = delivery.status
    delivery.status = WebhookDeliveryStatus.PENDING.value
    delivery.attempts = 0
    delivery.next_attempt_at = clock.now()
    delivery.claimed_until = None
    delivery.delivered_at = None
    db.session.flush()
    record_event(
        "webhook.resend",
        target_type="webhook_delivery",
        target_id=delivery.id,
        actor=actor,
        detail={"endpoint_id": delivery.endpoint_id, "event_id": delivery.event_id, "was": before},
    )
    enqueue_delivery_job(delivery.endpoint_id)


_WORD = re.compile(r"[A-Za-z][A-Za-z_.-]{0,31}")


def shown_url(url: str) -> str:
    """`url` as audit entries and stored errors show it: scheme://host[:port]/ and the path's
    first segment if it is a plain word, then "…" — never the rest of the path, the query or
    a user name. A chat's incoming-webhook address holds its token in the path
    (https://hooks.example/services/T000/B000/XXXX → https://hooks.example/services/…)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "…"
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    origin = f"{parts.scheme}://{netloc}" if parts.scheme and host else ""
    first, _slash, rest = parts.path.lstrip("/").partition("/")
    shown = f"/{first}" if _WORD.fullmatch(first) else ("/…" if first else "/")
    if shown != "/…" and rest:
        shown += "/…"
    elif shown != "/…" and (parts.query or parts.fragment):
        shown += "?…"
    return (origin + shown)[:300]


def normal_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return (
            0 < len(host) <= 253
            and re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", host) is not None
        )


def allowed_hosts() -> frozenset[str]:
    """Host names (or addresses) an admin allowed to resolve to private or loopback addresses."""
    setting = db.session.get(InstallationSetting, ALLOWED_HOSTS_SETTING)
    if setting is None:
        return frozenset()
    return frozenset(normal_host(h) for h in setting.value.splitlines() if h.strip())


def set_allowed_hosts(text: str, *, actor: User | None = None) -> list[str]:
    """Replace the allow-list (one host name or address a line; blank lines skipped); returns
    it, or WebhookInputError naming the first line that is not a host."""
    hosts: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        host = normal_host(line)
        if not _is_host(host):
            raise WebhookInputError(
                gettext(
                    "“%(line)s” is not a host name or address: write one a line, such as "
                    "hooks.internal or 10.0.0.5, without https:// or a path.",
                    line=line.strip()[:100],
                ),
                "allowed_hosts",
            )
        if host not in hosts:
            hosts.append(host)
    if len(hosts) > MAX_ALLOWED_HOSTS:
        raise WebhookInputError(
            gettext("At most %(count)d hosts.", count=MAX_ALLOWED_HOSTS), "allowed_hosts"
        )
    setting = db.session.get(InstallationSetting, ALLOWED_HOSTS_SETTING)
    if setting is None:
        setting = InstallationSetting(name=ALLOWED_HOSTS_SETTING)
        db.session.add(setting)
    setting.value = "\n".join(hosts)
    setting.updated_by_id = actor.id if actor else None
    db.session.flush()
    record_event(
        "webhook.allowed_hosts",
        target_type="installation_setting",
        target_id=ALLOWED_HOSTS_SETTING,
        actor=actor,
        detail={"hosts": hosts},
    )
    return hosts


def list_endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


# Deliveries not yet delivered or given up.
OPEN_STATUSES = (WebhookDeliveryStatus.PENDING.value, WebhookDeliveryStatus.DELIVERING.value)


def oldest_open(endpoint_id: int) -> WebhookDelivery | None:
    """The endpoint's oldest delivery not yet delivered or given up: the only one a job may
    send; the later ones wait behind it, whatever their next attempt's time."""
    return db.session.scalar(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status.in_(OPEN_STATUSES)
        )
        .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
        .limit(1)
    )


def next_in_turn(endpoint_id: int) -> int | None:
    """The id of oldest_open(endpoint_id), None when nothing waits."""
    head = oldest_open(endpoint_id)
    return head.id if head is not None else None


def deliveries_of(endpoint_id: int, limit: int = 100) -> list[WebhookDelivery]:
    """The endpoint's latest deliveries, newest event first."""
    return list(
        db.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.event_id.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
