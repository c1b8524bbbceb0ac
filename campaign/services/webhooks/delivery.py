"""Send webhook deliveries: signed (Standard Webhooks), in event order per endpoint, retried.

One job per endpoint works through that endpoint's deliveries in event order: it claims the
oldest one not yet delivered or given up (a conditional update with a lease, `claimed_until`),
posts it, and records the answer. A failure schedules the next attempt (5 s, 5 min, 30 min,
2 h, 5 h, then every 10 h, for three days from the first attempt) and stops: the endpoint's
later events wait behind it, so a receiver sees them in the order they happened. After three
days the delivery is FAILED and the next one goes. The reconciler (workers/jobs.reconcile)
enqueues the job again for endpoints whose next attempt has come or whose claim was lost.
Jobs wait on the webhooks queue, which workers take after the sending queue, and a job hands
the rest to a new one after DELIVERIES_PER_JOB or JOB_BUDGET_SECONDS: letters never wait long
behind a slow receiver.

The connection is made to an address checked after DNS: private, loopback, link-local,
multicast and reserved addresses are refused unless an admin allowed the host by name, and
the socket is opened to that very address (TLS still checks the certificate against the
name), so a name that resolves differently a second later reaches nothing else. Redirects are
not followed (a 3xx is a failure), and at most a few KB of the answer are read.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import hmac
import http.client
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import and_, or_, select, update

from campaign import clock
from campaign.extensions import db
from campaign.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookEvent,
)
from campaign.services.backups.hold import sending_is_held
from campaign.services.webhooks.endpoints import (
    OPEN_STATUSES,
    allowed_hosts,
    normal_host,
    oldest_open,
    secret_of,
    shown_url,
)
from campaign.services.webhooks.events import (
    DELIVERIES_PER_JOB,
    JOB_BUDGET_SECONDS,
    enqueue_delivery_job,
    rfc3339,
)
from campaign.tls import client_context

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
# The name server's answer (within the attempt's TOTAL_TIMEOUT): getaddrinfo has no timeout of
# its own, so it runs in a thread that is waited for this long at most.
DNS_TIMEOUT = 5.0
# The whole attempt, DNS included.
TOTAL_TIMEOUT = 10.0
MAX_ANSWER_BYTES = 4096
# Longer than any attempt (TOTAL_TIMEOUT): a claim older than this belongs to a lost worker.
CLAIM_SECONDS = 60
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
RETRY_WINDOW = timedelta(days=3)
USER_AGENT = "Campaign-Webhooks/1"


class SendFailure(Exception):
    """An attempt that got no 2xx: `code` (for the page's label), `detail`, the HTTP status.

    Stored as "code: detail" in webhook_deliveries.last_error; the detail holds no words, only
    what the page puts into a translated sentence: a host, addresses, a status, or a host and
    a technical token in parentheses ("127.0.0.1 (ECONNREFUSED)", "localhost (answer)").
    """

    def __init__(self, code: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.status = status


# --- signing ---------------------------------------------------------------------------------


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header: "v1," and the base64 HMAC-SHA256 of id.timestamp.body."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def body_of(event: WebhookEvent) -> bytes:
    """The JSON an endpoint receives: the same bytes on every attempt."""
    envelope = {"type": event.type, "timestamp": rfc3339(event.created_at), "data": event.payload}
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def headers_for(secret: str, event: WebhookEvent, body: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": event.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, event.message_id, timestamp, body),
    }


# --- the connection ----------------------------------------------------------------------------


def is_blocked_address(address: str) -> bool:
    """Whether a resolved address is one an endpoint may not reach without an admin's say."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_blocked_address(str(embedded)):
            return True
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


_GAI_ERRORS = {getattr(socket, name): name for name in dir(socket) if name.startswith("EAI_")}


def _token(error: BaseException) -> str:
    """A word-free name for an error: its errno's symbol, else its class's name."""
    number = getattr(error, "errno", None)
    if isinstance(error, socket.gaierror) and number in _GAI_ERRORS:
        return _GAI_ERRORS[number]
    if isinstance(number, int) and number in errno.errorcode:
        return errno.errorcode[number]
    return error.__class__.__name__


def _resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """socket.getaddrinfo, waited for `timeout` seconds at most (TimeoutError after that; the
    lookup itself ends in its daemon thread whenever the resolver gives up)."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:  # a literal address: no name server is asked
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    outcome: list[Any] = []

    def lookup() -> None:
        try:
            outcome.append(
                socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            )
        except Exception as error:  # handed to the waiting thread
            outcome.append(error)

    thread = threading.Thread(target=lookup, name="webhook-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if not outcome:
        raise TimeoutError(f"no DNS answer for {host}")
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    found: list[tuple[Any, ...]] = outcome[0]
    return found


def _addresses(host: str, port: int, deadline: float) -> list[tuple[Any, ...]]:
    try:
        found = _resolve(host, port, min(DNS_TIMEOUT, deadline - time.monotonic()))
    except TimeoutError:
        raise SendFailure("dns", f"{host} (timeout)") from None
    except (socket.gaierror, UnicodeError) as error:
        raise SendFailure("dns", f"{host} ({_token(error)})") from None
    if not found:
        raise SendFailure("dns", host)
    return found


def blocked_addresses(host: str, *, allowed: frozenset[str]) -> list[str]:
    """The private, loopback or link-local addresses `host` is (or resolves to) that a
    connection would refuse; [] when none, when the host is allowed, or when DNS has no answer.

    For a warning when an endpoint is saved: the connection checks again, after DNS, each time.
    """
    if normal_host(host) in allowed:
        return []
    try:
        found = _resolve(host, 443, DNS_TIMEOUT)
    except (OSError, UnicodeError):  # TimeoutError included: the page saves without a warning
        return []
    addresses = dict.fromkeys(str(row[4][0]) for row in found)
    return [address for address in addresses if is_blocked_address(address)]


def _connect(host: str, port: int, allowed: frozenset[str], deadline: float) -> socket.socket:
    """A TCP socket to a checked address of `host` (the first that answers)."""
    is_allowed = normal_host(host) in allowed
    refused: list[str] = []
    last: OSError | None = None
    timed_out = False
    for family, kind, proto, _name, address in _addresses(host, port, deadline):
        ip = str(address[0])
        if not is_allowed and is_blocked_address(ip):
            refused.append(ip)
            continue
        left = deadline - time.monotonic()
        if left <= 0:  # the attempt's time is up: no further address is tried
            timed_out = True
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(min(CONNECT_TIMEOUT, left))
        try:
            sock.connect(address)  # the checked address itself, never the name again
        except OSError as error:
            sock.close()
            last = error
            continue
        return sock
    if timed_out and last is None:
        raise SendFailure("timeout", f"{host} (connect)")
    if last is None:
        raise SendFailure("blocked_address", f"{host} → {', '.join(refused)}")
    if isinstance(last, TimeoutError):
        raise SendFailure("timeout", f"{host} (connect)")
    raise SendFailure("connect", f"{host} ({_token(last)})")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def post(url: str, body: bytes, headers: dict[str, str], *, allowed: frozenset[str]) -> Answer:
    """POST `body` to an https `url` through the guard; raises SendFailure without an answer."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    if parts.scheme != "https" or not host or parts.username or parts.password:
        raise SendFailure("invalid_url", shown_url(url))
    deadline = time.monotonic() + TOTAL_TIMEOUT  # DNS, connection and answer together
    raw = _connect(host, port, allowed, deadline)
    timed_out = threading.Event()

    def cut() -> None:  # the total time is up: whatever is being read ends now
        timed_out.set()
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), cut)
    timer.daemon = True
    timer.start()
    tls: ssl.SSLSocket | None = None
    response: http.client.HTTPResponse | None = None
    try:
        try:
            tls = client_context("WEBHOOK_CA_FILE").wrap_socket(raw, server_hostname=host)
        except ssl.SSLError as error:
            reason = error.reason or error.__class__.__name__
            if isinstance(error, ssl.SSLCertVerificationError):
                reason = f"{reason}:{error.verify_code}"
            raise SendFailure("tls", f"{host} ({reason})") from None
        tls.settimeout(max(0.1, deadline - time.monotonic()))
        connection = http.client.HTTPConnection(host, port, timeout=TOTAL_TIMEOUT)
        connection.sock = tls
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = f"[{host}]" if ":" in host else host
        request_headers = {
            "Host": netloc if port == 443 else f"{netloc}:{port}",
            "Connection": "close",
            **headers,
        }
        connection.request("POST", target, body=body, headers=request_headers)
        response = connection.getresponse()
        answer = response.read(MAX_ANSWER_BYTES)
        status = response.status
        location = response.getheader("Location", "") or ""
        connection.close()
    except SendFailure:
        raise
    except (OSError, http.client.HTTPException) as error:
        if timed_out.is_set() or isinstance(error, TimeoutError):
            raise SendFailure("timeout", f"{host} (answer)") from None
        raise SendFailure("connect", f"{host} ({_token(error)})") from None
    finally:
        timer.cancel()
        if response is not None:
            response.close()  # the rest of the answer is left unread
        if tls is not None:
            tls.close()
        raw.close()
    if 300 <= status < 400:
        raise SendFailure("redirect", f"{status} → {shown_url(location)}", status)
    if not 200 <= status < 300:
        raise SendFailure("http_status", str(status), status)
    return Answer(status, answer)


# --- the ledger --------------------------------------------------------------------------------


def next_delay(attempts: int) -> timedelta | None:
    """The wait after failed attempt number `attempts` (1 = the first), None to give up.

    Measured on the schedule itself, from the first attempt: a delivery is tried for three
    days of nominal time, the last wait shortened to end at three days exactly.
    """
    elapsed = sum(
        (RETRY_DELAYS[min(n, len(RETRY_DELAYS) - 1)] for n in range(attempts - 1)), timedelta()
    )
    if elapsed >= RETRY_WINDOW:
        return None
    delay = RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
    return min(delay, RETRY_WINDOW - elapsed)


def _claim(delivery_id: int, now: datetime) -> datetime | None:
    """Take the delivery if it is due or its claim was lost; the claim's expiry, or None."""
    until = now + timedelta(seconds=CLAIM_SECONDS)
    taken = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            or_(
                and_(
                    WebhookDelivery.status == WebhookDeliveryStatus.PENDING.value,
                    or_(
                        WebhookDelivery.next_attempt_at.is_(None),
                        WebhookDelivery.next_attempt_at <= now,
                    ),
                ),
                and_(
                    WebhookDelivery.status == WebhookDeliveryStatus.DELIVERING.value,
                    WebhookDelivery.claimed_until < now,
                ),
            ),
        )
        .values(status=WebhookDeliveryStatus.DELIVERING.value, claimed_until=until)
        .execution_options(synchronize_session=False)
    )
    return until if getattr(taken, "rowcount", 0) == 1 else None


def _record(delivery_id: int, until: datetime, **values: Any) -> bool:
    """Write an attempt's outcome if the claim is still ours (a lost one was taken back)."""
    done = db.session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == WebhookDeliveryStatus.DELIVERING.value,
            WebhookDelivery.claimed_until == until,
        )
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    return getattr(done, "rowcount", 0) == 1


@dataclass
class DeliveryReport:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def attempt(delivery: WebhookDelivery, now: datetime) -> SendFailure | Answer:
    """One POST of the delivery's event to its endpoint (no database writes)."""
    endpoint = db.session.get(WebhookEndpoint, delivery.endpoint_id)
    event = db.session.get(WebhookEvent, delivery.event_id)
    if endpoint is None or event is None:
        return SendFailure("internal", "gone")
    body = body_of(event)
    try:
        secret = secret_of(endpoint)
        headers = headers_for(secret, event, body, now)
        return post(endpoint.url, body, headers, allowed=allowed_hosts())
    except SendFailure as failure:
        return failure
    except Exception as error:  # a secret that no longer decrypts, a CA file gone …
        log.warning("webhook delivery %s: %s", delivery.id, error.__class__.__name__)
        return SendFailure("internal", error.__class__.__name__)


def deliver_webhooks(
    endpoint_id: int,
    *,
    commit: Callable[[], None],
    should_stop: Callable[[], bool] | None = None,
    limit: int = DELIVERIES_PER_JOB,
) -> DeliveryReport:
    """Send the endpoint's due deliveries in event order until one fails or none is due.

    Commits (through `commit`) after each claim and each outcome: a worker lost mid-way
    repeats at most the one delivery in flight (at least once; the receiver drops repeats
    by `webhook-id`). After `limit` deliveries, or once JOB_BUDGET_SECONDS have passed, the
    rest goes to a new job at the back of the webhooks queue, so the worker sees the sending
    queue again in between.
    """
    report = DeliveryReport()
    if sending_is_held():
        return report  # a restored copy posts nothing until confirmed; the rows stay pending
    started = time.monotonic()
    for done in range(limit + 1):
        if should_stop is not None and should_stop():
            return report  # the reconciler enqueues the rest (a stopping worker takes none)
        if done == limit or (done and time.monotonic() - started >= JOB_BUDGET_SECONDS):
            # More may be due: the next job goes on, so that one job never holds a worker
            # for long (nor outlasts its timeout).
            enqueue_delivery_job(endpoint_id)
            commit()
            break
        endpoint = db.session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None or not endpoint.enabled:
            break
        head = oldest_open(endpoint_id)
        if head is None:
            break
        now = clock.now()
        until = _claim(head.id, now)
        commit()
        if until is None:
            break  # not due yet, or another job has it: it carries on from here
        db.session.refresh(head)
        outcome = attempt(head, now)
        finished = clock.now()
        attempts = head.attempts + 1
        common: dict[str, Any] = {"attempts": attempts, "last_attempt_at": finished}
        if isinstance(outcome, Answer):
            _record(
                head.id,
                until,
                status=WebhookDeliveryStatus.DELIVERED.value,
                delivered_at=finished,
                next_attempt_at=None,
                last_status_code=outcome.status,
                last_error="",
                **common,
            )
            commit()
            report.delivered += 1
            continue
        common["last_status_code"] = outcome.status
        common["last_error"] = str(outcome)[:1000]
        delay = next_delay(attempts)
        if delay is None:
            _record(
                head.id,
                until,
                status=WebhookDeliveryStatus.FAILED.value,
                next_attempt_at=None,
                **common,
            )
            commit()
            report.failed += 1
            log.info("webhook delivery %s given up after %s attempts", head.id, attempts)
            continue  # given up: the next event's turn
        _record(
            head.id,
            until,
            status=WebhookDeliveryStatus.PENDING.value,
            next_attempt_at=finished + delay,
            **common,
        )
        commit()
        report.retrying += 1
        break  # the later events wait for this one
    return report


def _is_due(delivery: WebhookDelivery, now: datetime) -> bool:
    if delivery.status == WebhookDeliveryStatus.DELIVERING.value:
        return delivery.claimed_until is None or delivery.claimed_until < now
    return delivery.next_attempt_at is None or delivery.next_attempt_at <= now


def requeue_due(now: datetime | None = None) -> int:
    """Enqueue (after commit) the job of each enabled endpoint whose next delivery is due or
    whose claim was lost; the number of endpoints."""
    if sending_is_held():
        return 0  # a restored copy posts nothing until confirmed (decision 0087)
    moment = now or clock.now()
    with_work = db.session.scalars(
        select(WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.enabled.is_(True), WebhookDelivery.status.in_(OPEN_STATUSES))
        .distinct()
    )
    due = 0
    for endpoint_id in sorted(set(with_work)):
        head = oldest_open(endpoint_id)  # only the oldest may go: the others wait behind it
        if head is not None and _is_due(head, moment):
            due += 1
            enqueue_delivery_job(endpoint_id)
    return due
