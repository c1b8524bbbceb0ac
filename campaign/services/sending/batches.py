"""Sending a campaign: claim ledger rows with a lease, send them, record each outcome; reconcile.

Services elsewhere only flush. The send loop takes the job's `commit` callable instead,
because each outcome must be durable before the next message goes out: a worker killed
at any moment then duplicates at most the one message in flight (decision 0011).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import threading
import time
import uuid
import weakref
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from types import SimpleNamespace
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from redis.exceptions import RedisError
from rq.timeouts import BaseTimeoutException
from sqlalchemy import and_, bindparam, case, exists, func, or_, select, update

from campaign import tls
from campaign.dkim import DkimError, DkimSigningError
from campaign.extensions import db
from campaign.inbound.reply_token import reply_address
from campaign.letters.letter import LetterSource
from campaign.mail import (
    MessageError,
    encode_address,
    feedback_id,
    list_id,
    message_id_domain,
)
from campaign.models import (
    CLAIMABLE,
    Campaign,
    CampaignStatus,
    Contact,
    Delivery,
    DeliveryStatus,
    StatementVersion,
    Suppression,
    SuppressionReason,
    WebhookEventType,
)
from campaign.queue import get_queue, get_redis
from campaign.rate_limit import (
    ConnectionSemaphore,
    DailyLimitReached,
    RateLimiter,
    pace_interval,
)
from campaign.scheduling import stored_text
from campaign.secret_box import SecretUnreadable
from campaign.services.accounts.audit import record_event
from campaign.services.backups.hold import SENDING_HELD, held_reason, sending_is_held
from campaign.services.contacts.suppressions import suppress_address
from campaign.services.contacts.trash import cancel_open_letters
from campaign.services.schedules.cases import cases_context
from campaign.services.sending.campaigns import is_open, pause_campaign, stop_flag_key
from campaign.services.sending.deliveries import SEND_JOB, enqueue_send_jobs, unless_gone
from campaign.services.sending.followups import ledger_subjects, step_sources, thread_headers
from campaign.services.sending.smtp_accounts import settings_for
from campaign.services.sending.stop_watch import StopWatch
from campaign.services.sending.unsubscribe import public_url, unsubscribe_url
from campaign.services.sign_on.invitations import notify_signers
from campaign.services.statements import files as statement_files
from campaign.services.statements import presend
from campaign.services.statements.complete_letters import LetterCache, compose_letter
from campaign.services.statements.salutation_rules import current_rule_set
from campaign.services.statements.statements import letter_source
from campaign.services.webhooks import events as webhook_events
from campaign.services.webhooks import payloads as webhook_payloads
from campaign.smtp import Outcome, SendOutcome, SmtpConnection, SmtpSettings
from campaign.tracking.links import LetterTracking, base_url_problem

log = logging.getLogger(__name__)

# Retry after a temporary failure: 1 min, 2, 4, ... at most an hour, each ±20% so that
# rows deferred together do not all come back in the same second.
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
BACKOFF_JITTER = 0.2
# How often a batch looks again at the campaign's status and the suppression list: every
# second, and every RECHECK_MESSAGES letters (a pause or cancel is seen before each letter
# through the stop flag). Four queries each time: 50 letters made it 0.1 ms a letter at
# full speed for a window of 33 ms; 200 keeps the window within the second (decision 0077).
RECHECK_SECONDS = 1.0
RECHECK_MESSAGES = 200
_CLAIMABLE = [s.value for s in CLAIMABLE]
# A claim's lease lasts this many heartbeats; the worker renews it every heartbeat.
LEASE_HEARTBEATS = 4


@dataclass
class BatchResult:
    """What one batch did; `has_more` says whether due rows are left for another job."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    bounced: int = 0
    suppressed: int = 0
    in_doubt: int = 0
    released: int = 0  # handed back unsent (pause, cancel, daily limit, time budget)
    stopped: str = ""  # why the batch ended before its last row, in words
    has_more: bool = False
    finished: bool = False  # the campaign was finished by this batch


@dataclass
class ReconcileReport:
    requeued: int = 0  # stale leases handed back
    in_doubt: int = 0  # of those, the one possibly in flight when its worker was lost
    cancelled: int = 0  # stale rows of cancelled campaigns
    enqueued: dict[int, int] = field(default_factory=dict)  # campaign id -> jobs queued
    finished: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    id: int
    contact_id: int | None
    email: str
    message_id: str
    unsubscribe_token: str
    attempts: int
    step: int = 0  # 0 for the letter, N for follow-up N


def _now() -> datetime:
    return datetime.now(UTC)


def _config(name: str) -> int:
    return int(current_app.config[name])


def backoff_delay(attempts: int, *, rng: Callable[[], float] = random.random) -> timedelta:
    """How long to wait after the `attempts`-th failed try (1 min, 2, 4 … capped, jittered)."""
    base = min(BACKOFF_FIRST * (2 ** max(0, attempts - 1)), BACKOFF_MAX)
    return base * (1 + BACKOFF_JITTER * (2 * rng() - 1))


def batch_size(settings: SmtpSettings) -> int:
    """Rows one job claims: SEND_BATCH_SIZE, fewer when the account's pace is slow.

    A batch should be sent within half its lease even at the account's full pace.
    """
    size = max(1, _config("SEND_BATCH_SIZE"))
    interval = pace_interval(settings.per_second, settings.per_minute)
    if interval > 0:
        size = min(size, max(1, int(_config("SEND_LEASE_SECONDS") / 2 / interval)))
    return size


def claim_lease_seconds() -> int:
    """How long a claim holds without its heartbeat: a lost worker's rows come back after it."""
    return max(1, _config("SEND_HEARTBEAT_SECONDS")) * LEASE_HEARTBEATS


def _key_prefix() -> str:
    return f"campaign:{current_app.config['QUEUE_NAME']}"


# --- claims ------------------------------------------------------------------------------


def claim_deliveries(campaign_id: int, claim_id: str, limit: int) -> list[int]:
    """Lease up to `limit` due rows of a sending campaign to `claim_id`; return their ids.

    One conditional UPDATE: on PostgreSQL the candidates are chosen FOR UPDATE SKIP LOCKED,
    so workers on many machines never take the same row; SQLite's single writer makes the
    same statement safe there. The caller commits, then sends.

    The candidates are a MATERIALIZED common table expression, evaluated exactly once. As a
    plain `id IN (subquery)` PostgreSQL may re-run the LIMITed subquery inside its join
    (the plan depends on table statistics), and one claim then took a whole campaign.

    Every statement here reads only the campaign's open rows, never its sent ones nor the
    whole table: a claim runs once a batch, and a cost that grows with the campaign makes
    each letter of a big campaign dearer (decision 0077).
    """
    now = _now()
    # A contact moved to the trash gets nothing more: its rows still open (one a stopped
    # batch handed back, say) are cancelled here, and never claimed (decision 0048). The
    # trashed contacts are few and indexed (ix_contacts_trashed): look their rows up from
    # them, instead of testing every open row of the campaign against the contacts.
    trashed = select(Contact.id).where(Contact.deleted_at.is_not(None))
    cancel_open_letters(Delivery.campaign_id == campaign_id, Delivery.contact_id.in_(trashed))
    candidates = (
        select(Delivery.id)
        .where(
            Delivery.campaign_id == campaign_id,
            Delivery.status.in_(_CLAIMABLE),
            Delivery.next_attempt_at <= now,
            # Not in the trash (a row whose contact was erased has none; it is claimed).
            or_(Delivery.contact_id.is_(None), Delivery.contact_id.not_in(trashed)),
            exists().where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING),
        )
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("claim_candidates")
        .prefix_with("MATERIALIZED")
    )
    db.session.execute(
        update(Delivery)
        .where(Delivery.id.in_(select(candidates.c.id)), Delivery.status.in_(_CLAIMABLE))
        .values(
            status=DeliveryStatus.SENDING.value,
            claimed_by=claim_id,
            lease_until=now + timedelta(seconds=claim_lease_seconds()),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return list(
        db.session.scalars(
            select(Delivery.id).where(_held(claim_id, campaign_id)).order_by(Delivery.id)
        )
    )


def _held(claim_id: str, campaign_id: int | None = None) -> Any:
    """SQL: the rows this claim holds. With the campaign, an index finds them (claimed_by
    has none): the campaign's rows being sent, not every row of the table."""
    held = and_(Delivery.claimed_by == claim_id, Delivery.status == DeliveryStatus.SENDING)
    return held if campaign_id is None else and_(Delivery.campaign_id == campaign_id, held)


def _release(
    claim_id: str,
    *,
    status: str,
    note: str,
    next_attempt_at: datetime | None,
    campaign_id: int | None = None,
) -> int:
    """Hand back the rows still held by this claim (unsent: attempts unchanged).

    A row that may already have reached the server on an earlier try stays in doubt.
    """
    values: dict[str, Any] = {
        "status": unless_gone(status),
        "lease_until": None,
        "claimed_by": "",
        "updated_at": _now(),
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if status == DeliveryStatus.CANCELLED:
        values["reason"] = "cancelled"
        values["next_attempt_at"] = None
    if note:
        values["last_reply"] = note
    result = db.session.execute(
        update(Delivery)
        .where(_held(claim_id, campaign_id))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _hand_back(batch: _Batch) -> int:
    """Give the rows this batch still holds back to the queue, unsent (attempts unchanged)."""
    return _release(
        batch.claim_id,
        campaign_id=batch.campaign_id,
        status=DeliveryStatus.QUEUED.value,
        note="",
        next_attempt_at=None,
    )


# The lease threads of this process (a set that forgets ended threads by itself).
_LEASE_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
# The lease keepers of this process's running batches.
_KEEPERS: weakref.WeakSet[LeaseKeeper] = weakref.WeakSet()


def give_up_leases() -> int:
    """Stop renewing every lease this process holds (a send job's watchdog,
    workers/__main__.py, when the job outlived its timeout): how many keepers stopped."""
    keepers = list(_KEEPERS)
    for keeper in keepers:
        keeper.give_up()
    return len(keepers)


def wait_for_lease_threads(timeout: float) -> None:
    """Wait at most `timeout` seconds for the lease threads of ended batches to stop.

    A worker that runs send batches in its own process calls it before it forks a work
    horse for another job: with SQLite, a fork taken while a thread was inside SQLite
    leaves the child a locked mutex (workers/__main__.py, the fork lock).
    """
    deadline = time.monotonic() + timeout
    for thread in list(_LEASE_THREADS):
        thread.join(timeout=max(0.0, deadline - time.monotonic()))


class LeaseKeeper:
    """The claim's heartbeat: a thread renews the lease of the rows a batch holds.

    The lease is short (SEND_HEARTBEAT_SECONDS x LEASE_HEARTBEATS), so the rows of a worker
    that died come back within a minute, however long a batch or one slow message takes. The
    database is the truth: the batch sends only while the last renewal it saw still holds
    with a heartbeat to spare; a worker that cannot reach the database (or whose rows were
    taken back) stops instead of sending on a lease that has run out.
    """

    def __init__(self, app: Any, claim_id: str, campaign_id: int | None = None) -> None:
        self.engine = db.engine
        self.claim_id = claim_id
        self.campaign_id = campaign_id
        self.heartbeat = max(1, int(app.config["SEND_HEARTBEAT_SECONDS"]))
        self.lease = self.heartbeat * LEASE_HEARTBEATS
        # The claim itself set a full lease just now.
        self.good_until = time.monotonic() + self.lease - self.heartbeat
        self.is_lost = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{claim_id[-8:]}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        _LEASE_THREADS.add(self._thread)
        _KEEPERS.add(self)
        return self

    def give_up(self) -> None:
        """Renew no more, from any thread: the rows come back after their lease, and the
        batch (holds() is False) sends no further letter."""
        self.is_lost = True
        self._stopped.set()

    def __exit__(self, *_exc: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.heartbeat * 2)

    def holds(self) -> bool:
        """Whether the batch may still send: its lease holds, with a heartbeat to spare."""
        return not self.is_lost and time.monotonic() < self.good_until

    def renew(self) -> None:
        started = time.monotonic()
        now = _now()
        # SKIP LOCKED: the row the batch is recording right now is leaving `sending` anyway;
        # waiting for it could deadlock with the batch's own transaction (PostgreSQL).
        held = (
            select(Delivery.id)
            .where(_held(self.claim_id, self.campaign_id))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        with self.engine.begin() as connection:
            result = connection.execute(
                update(Delivery)
                .where(Delivery.id.in_(held), _held(self.claim_id, self.campaign_id))
                .values(lease_until=now + timedelta(seconds=self.lease))
            )
            renewed = int(getattr(result, "rowcount", 0) or 0)
        if renewed:
            self.good_until = started + self.lease - self.heartbeat
        else:
            # Nothing held any more: all recorded, or taken back by the reconciler.
            self.is_lost = True

    def _beat(self) -> None:
        while not self._stopped.wait(self.heartbeat):
            try:
                self.renew()
            except Exception:
                # The database is away: the lease is not renewed, and holds() says so in time.
                log.warning(
                    "claim %s: the lease could not be renewed", self.claim_id, exc_info=True
                )


_RECORD_STATEMENTS: dict[tuple[frozenset[str], bool, bool], Any] = {}
# Outcomes that end a row, and that a row which may already have gone keeps as in_doubt.
_FINAL_UNLESS_GONE = (
    DeliveryStatus.FAILED.value,
    DeliveryStatus.SUPPRESSED.value,
    DeliveryStatus.CANCELLED.value,
)


def _record(row: _Row, claim_id: str, *, bump_duplicates: bool = False, **values: Any) -> None:
    """Write a row's outcome (the caller commits).

    Guarded by the claim: a row the reconciler took back from a lease we overran is
    recorded only if nobody else has claimed it since. The statement is built once per
    shape and run on the Core connection: this runs once per message.
    """
    values.setdefault("lease_until", None)
    values["updated_at"] = _now()
    status = values.get("status")
    if status in _FINAL_UNLESS_GONE:
        values.setdefault("next_attempt_at", None)  # never claimed again, in doubt or not
    keeps_doubt = status in _FINAL_UNLESS_GONE or status == DeliveryStatus.DEFERRED
    key = (frozenset(values), bump_duplicates, keeps_doubt)
    statement = _RECORD_STATEMENTS.get(key)
    if statement is None:
        table = Delivery.__table__
        assigns: dict[str, Any] = {
            name: bindparam(f"v_{name}", type_=table.c[name].type) for name in values
        }
        if keeps_doubt:
            # A row that may have reached the server earlier stays in doubt (with the reason
            # it stopped, when it stops): the ledger never says less than the truth.
            assigns["status"] = case(
                (
                    or_(
                        table.c.possible_duplicates > 0,
                        table.c.status == DeliveryStatus.IN_DOUBT.value,
                    ),
                    DeliveryStatus.IN_DOUBT.value,
                ),
                else_=assigns["status"],
            )
        if bump_duplicates:
            assigns["possible_duplicates"] = table.c.possible_duplicates + 1
        statement = (
            update(table)
            .where(
                table.c.id == bindparam("row_id"),
                or_(
                    table.c.claimed_by == bindparam("claim_id"),
                    # One plain comparison per status, not IN: an IN list is an "expanding"
                    # parameter, and SQLAlchemy wrote the statement's SQL again at every
                    # execution (once a letter; decision 0082).
                    *(table.c.status == claimable for claimable in _CLAIMABLE),
                ),
            )
            .values(assigns)
        )
        _RECORD_STATEMENTS[key] = statement
    params = {f"v_{name}": value for name, value in values.items()}
    done = db.session.connection().execute(
        statement, {"row_id": row.id, "claim_id": claim_id, **params}
    )
    if status in _WEBHOOK_EVENTS and int(getattr(done, "rowcount", 0) or 0):
        _report_to_webhooks(row.id, _WEBHOOK_EVENTS[status], values["updated_at"])


# The final outcomes endpoints may ask to hear of (services/webhooks, decision 0068).
_WEBHOOK_EVENTS = {
    DeliveryStatus.FAILED.value: WebhookEventType.DELIVERY_FAILED,
    DeliveryStatus.BOUNCED.value: WebhookEventType.DELIVERY_BOUNCED,
}


def _report_to_webhooks(delivery_id: int, event_type: WebhookEventType, at: datetime) -> None:
    if not webhook_events.is_wanted(event_type):
        return  # the usual case: one small query, nothing written
    # The row may have stayed in doubt instead (it may have reached the server before).
    stored = db.session.connection().scalar(
        select(Delivery.__table__.c.status).where(Delivery.__table__.c.id == delivery_id)
    )
    if stored != _WEBHOOK_STATUS[event_type]:
        return
    webhook_events.record_webhook_event(
        event_type,
        webhook_payloads.delivery_event(
            delivery_id, at, email=event_type == WebhookEventType.DELIVERY_BOUNCED
        ),
    )


_WEBHOOK_STATUS = {event: status for status, event in _WEBHOOK_EVENTS.items()}


# --- one batch ---------------------------------------------------------------------------


@dataclass
class _Batch:
    campaign_id: int
    claim_id: str
    commit: Callable[[], None]
    sender: str
    envelope_from: str
    reply_to: str
    has_list_unsubscribe: bool
    is_pdf_attached: bool
    deadline: datetime
    # List-Id and Feedback-ID of a campaign carrying List-Unsubscribe ("" for one-to-one).
    list_id: str
    source: LetterSource
    rules: Any
    settings: SmtpSettings
    result: BatchResult
    # The campaign's opt-in open/click tracking; None when it tracks nothing.
    tracking: LetterTracking | None = None
    # Follow-ups: the letter source of each step >= 1, and per delivery the Message-IDs of
    # the letters sent before it to the same person (oldest first), to thread under them.
    step_sources: dict[int, LetterSource] = field(default_factory=dict)
    earlier_ids: dict[int, list[str]] = field(default_factory=dict)
    # Delivery id -> "Re: " + the subject that person's first letter carried (the ledger's).
    reply_subjects: dict[int, str] = field(default_factory=dict)
    # The worker's shutdown, asked between letters (None: never).
    should_stop: Callable[[], bool] | None = None
    # The statement files the campaign attaches (read once per job), for first letters.
    files: list[Any] = field(default_factory=list)
    # `{% for case in cases %}`: the campaign's linked cases, read once per batch.
    cases: list[dict[str, Any]] = field(default_factory=list)
    errors_in_a_row: int = 0
    last_error: str = ""
    keeper: LeaseKeeper | None = None
    # The campaign's stop flag, told by Redis when it changes (None: ask Redis each time).
    stop_watch: StopWatch | None = None
    # Whether each copy (Cc) address is suppressed, read for the whole batch at once (0072).
    letters: LetterCache = field(default_factory=LetterCache)
    copies_stale: bool = False  # an address was suppressed by a bounce in this batch


def _letter_cache(contacts: dict[int, dict[str, Any]]) -> LetterCache:
    """Whether each copy (Cc) address of these contacts is suppressed, read in one query."""
    cache = LetterCache()
    cache.preload_copies(
        address for contact in contacts.values() for address in (contact["cc_emails"] or "").split()
    )
    return cache


def _suppressed_keys(rows: Sequence[_Row]) -> set[str]:
    keys = {row.email.strip().lower() for row in rows}
    if not keys:
        return set()
    return set(
        db.session.scalars(select(Suppression.email_key).where(Suppression.email_key.in_(keys)))
    )


def _answered_contacts(campaign_id: int, rows: Sequence[_Row]) -> set[int]:
    """Contacts among these follow-up rows who have answered a letter of this campaign.

    A follow-up row is written when its step fires; a human reply that arrives while the row
    waits (a daily limit, a pause, retries) must still stop it.
    """
    contact_ids = {row.contact_id for row in rows if row.step > 0 and row.contact_id}
    if not contact_ids:
        return set()
    return set(
        db.session.scalars(
            select(Delivery.contact_id)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.contact_id.in_(contact_ids),
                Delivery.replied_at.is_not(None),
            )
            .distinct()
        )
    )


@dataclass(frozen=True)
class _StopList:
    """Who must not get their letter after all, as last read (addresses, contact ids)."""

    suppressed: set[str]
    answered: set[int]
    trashed: set[int] = field(default_factory=set)  # contacts moved to the trash since


def _trashed_contacts(rows: Sequence[_Row]) -> set[int]:
    ids = {row.contact_id for row in rows if row.contact_id}
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(Contact.id).where(Contact.id.in_(ids), Contact.deleted_at.is_not(None))
        )
    )


def _read_stop_list(campaign_id: int, rows: Sequence[_Row]) -> _StopList:
    return _StopList(
        _suppressed_keys(rows), _answered_contacts(campaign_id, rows), _trashed_contacts(rows)
    )


def _has_first_letters_to_send(campaign_id: int) -> bool:
    """Whether a first letter (step 0) of the campaign may still be claimed and sent.

    Claimed ones count too: another worker's lease may run out and free them to us."""
    pending = [*_CLAIMABLE, DeliveryStatus.SENDING.value]
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.step == 0,
                    Delivery.status.in_(pending),
                )
            )
        )
    )


def _public_title(campaign: Campaign, version: StatementVersion | None) -> str:
    """The title recipients may see (List-Id): the launched version's, else the statement's."""
    if version is not None and isinstance(version.snapshot, dict):
        title = str(version.snapshot.get("title") or "")
        if title:
            return title
    return campaign.statement.title if campaign.statement is not None else ""


def _campaign_status(campaign_id: int) -> str | None:
    return db.session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))


def send_batch(
    campaign_id: int,
    *,
    worker: str,
    commit: Callable[[], None],
    should_stop: Callable[[], bool] | None = None,
) -> BatchResult:
    """Claim a batch of the campaign's due deliveries, send them over one connection, record each.

    `commit` makes each outcome durable before the next message (the job passes
    db.session.commit). Problems with single messages are recorded on their rows; nothing
    is raised for them. `should_stop` (the worker is shutting down) is asked between
    letters: when it says yes, the rows not yet sent go back to the queue at once.
    """
    result = BatchResult()
    campaign = db.session.get(Campaign, campaign_id)
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return result
    if sending_is_held():
        # A restored copy sends nothing until an admin confirms (decision 0087), whatever
        # set this campaign sending: it pauses, saying why, and every row stays queued.
        pause_campaign(campaign, reason=held_reason())
        commit()
        result.stopped = str(SENDING_HELD)
        return result
    version = db.session.get(StatementVersion, campaign.statement_version_id)
    try:
        settings = settings_for(campaign.smtp_account)
    except SecretUnreadable:
        # Raising would fail every job while the campaign still says "sending"; staff must
        # enter the password again, so say so where they look.
        name = campaign.smtp_account.name if campaign.smtp_account else ""
        reason = (
            f"the stored password of the SMTP account {name!r} cannot be read (was "
            "CAMPAIGN_SECRET_KEY changed?): enter it again on the account's page, then resume"
        )
        pause_campaign(campaign, reason=reason)
        log.warning("campaign %s paused: %s", campaign_id, reason)
        commit()
        result.stopped = reason
        return result
    except DkimError as error:
        # The account must sign and cannot: no letter leaves unsigned (decision 0042).
        why = _l(
            "not sent: the DKIM key cannot be used (%(reason)s); mend it, then resume",
            reason=str(error),
        )
        pause_campaign(campaign, reason=stored_text.dump(why))
        log.warning("campaign %s paused: %s", campaign_id, why)
        commit()
        result.stopped = str(why)
        return result
    # The launch checked the web app's addresses; the letters use this worker's (0037).
    unfit = presend.worker_pause_reason(campaign)
    if unfit is not None:
        pause_campaign(campaign, reason=stored_text.dump(unfit))
        log.warning("campaign %s paused: %s", campaign_id, unfit)
        commit()
        result.stopped = str(unfit)
        return result
    try:
        # Only first letters carry the files: follow-ups go out after an annex was deleted.
        files = (
            statement_files.campaign_files(campaign, version.snapshot if version else None)
            if _has_first_letters_to_send(campaign_id)
            else []
        )
    except statement_files.FileMissing as missing:
        # Every letter would go without its annex: staff restore it or change the campaign.
        pause_campaign(campaign, reason=stored_text.dump(missing.message))
        commit()
        result.stopped = str(missing.message)
        return result
    claim_id = f"{worker[:60]}:{uuid.uuid4().hex[:16]}"
    ids = claim_deliveries(campaign_id, claim_id, batch_size(settings))
    commit()
    result.claimed = len(ids)
    if not ids:
        result.finished = finish_if_done(campaign_id)
        commit()
        return result

    launched_at = campaign.launched_at or _now()
    batch = _Batch(
        campaign_id=campaign_id,
        claim_id=claim_id,
        commit=commit,
        sender=campaign.from_address,
        envelope_from=parseaddr(campaign.from_address)[1],
        reply_to=campaign.reply_to,
        has_list_unsubscribe=campaign.has_list_unsubscribe,
        is_pdf_attached=campaign.is_pdf_attached,
        list_id=(
            # The statement's title as launched (public, stable), never the internal name.
            list_id(campaign.id, _public_title(campaign, version), campaign.from_address)
            if campaign.has_list_unsubscribe
            else ""
        ),
        deadline=launched_at + timedelta(hours=campaign.give_up_hours),
        source=letter_source(version if version is not None else campaign.statement),
        rules=current_rule_set(),
        settings=settings,
        result=result,
        tracking=_tracking(campaign, commit),
        cases=cases_context(campaign),
        files=files,
        should_stop=should_stop,
    )
    rows = [
        _Row(*row)
        for row in db.session.execute(
            select(
                Delivery.id,
                Delivery.contact_id,
                Delivery.email,
                Delivery.message_id,
                Delivery.unsubscribe_token,
                Delivery.attempts,
                Delivery.step,
            )
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        )
    ]
    _add_follow_up_context(batch, rows)
    # Plain data, not ORM objects: the commit after each message would expire them and
    # reload every contact with a query of its own.
    contacts = {
        row.id: dict(row._mapping)
        for row in db.session.execute(
            select(Contact.__table__).where(
                Contact.id.in_({r.contact_id for r in rows if r.contact_id})
            )
        )
    }
    batch.letters = _letter_cache(contacts)
    # Failures in a row carry over from batch to batch of the campaign (through Redis, two
    # calls a batch), so small batches pause a campaign on a broken server too.
    errors_key = f"{_key_prefix()}:campaign:{campaign_id}:errors-in-a-row"
    redis = get_redis()
    with LeaseKeeper(current_app, claim_id, campaign_id) as keeper:
        batch.keeper = keeper
        try:
            batch.errors_in_a_row = int(redis.get(errors_key) or 0)
            _run(batch, rows, contacts)
            redis.set(errors_key, batch.errors_in_a_row, ex=86_400)
        except RedisError as error:
            # Redis went away (the limits and flags live there): nothing more is sent; the rows
            # not yet written to go back to the ledger at once, for the next job.
            db.session.rollback()
            result.released += _hand_back(batch)
            result.stopped = f"Redis could not be reached ({type(error).__name__})"
            log.warning("campaign %s: %s; the batch's rows go back", campaign_id, result.stopped)
            commit()
    result.has_more = has_due_rows(campaign_id)
    if not result.has_more:
        result.finished = finish_if_done(campaign_id)
    commit()
    return result


def _add_follow_up_context(batch: _Batch, rows: list[_Row]) -> None:
    """For a batch holding follow-up rows: their statements, and the letters they answer."""
    follow_ups = [row for row in rows if row.step > 0]
    if not follow_ups:
        return
    # Signed and titled as the step says (the first letter's signatures, "Re: " subject).
    batch.step_sources.update(step_sources(batch.campaign_id, batch.source))
    batch.reply_subjects = ledger_subjects(batch.campaign_id, follow_ups)
    # One query for the whole batch: every earlier letter to these people in this campaign.
    sent_before: dict[int, list[tuple[int, str]]] = {}
    for contact_id, step, message_id in db.session.execute(
        select(Delivery.contact_id, Delivery.step, Delivery.message_id).where(
            Delivery.campaign_id == batch.campaign_id,
            Delivery.contact_id.in_({row.contact_id for row in follow_ups if row.contact_id}),
            Delivery.step < max(row.step for row in follow_ups),
        )
    ):
        sent_before.setdefault(contact_id or 0, []).append((step, message_id))
    for row in follow_ups:
        earlier = sorted(sent_before.get(row.contact_id or 0, []))
        batch.earlier_ids[row.id] = [message_id for step, message_id in earlier if step < row.step]


def _run(batch: _Batch, rows: list[_Row], contacts: dict[int, dict[str, Any]]) -> None:
    result = batch.result
    redis = get_redis()
    prefix = f"{_key_prefix()}:smtp:{batch.settings.key}"
    limiter = RateLimiter(
        redis,
        prefix,
        per_second=batch.settings.per_second,
        per_minute=batch.settings.per_minute,
        per_day=batch.settings.per_day,
        sleep=_stoppable_sleep(batch.should_stop),
    )
    lease = _config("SEND_LEASE_SECONDS")
    semaphore = ConnectionSemaphore(
        redis,
        prefix,
        batch.settings.max_connections,
        ttl=max(60.0, 3.0 * batch.settings.timeout),
        holder=batch.claim_id,
        sleep=_stoppable_sleep(batch.should_stop),
    )
    started = last_check = time.monotonic()
    try:
        has_slot = semaphore.acquire(timeout=lease / 4)
    except _WorkerStopping:
        _stop_for_worker(batch)
        return
    if not has_slot:
        result.released += _hand_back(batch)
        result.stopped = "all the SMTP account's connections were in use"
        batch.commit()
        return
    helo = message_id_domain(batch.sender)
    stop_list = _read_stop_list(batch.campaign_id, rows)
    since_check = 0
    try:
        with (
            StopWatch(stop_flag_key(batch.campaign_id)) as watch,
            SmtpConnection(batch.settings, helo_name=helo) as connection,
        ):
            batch.stop_watch = watch
            for index, row in enumerate(rows):
                clock = time.monotonic()
                if since_check >= RECHECK_MESSAGES or clock - last_check >= RECHECK_SECONDS:
                    status = _campaign_status(batch.campaign_id)
                    if status != CampaignStatus.SENDING:
                        _stop_for_status(batch, status)
                        return
                    stop_list = _read_stop_list(batch.campaign_id, rows[index:])
                    # Copy addresses suppressed meanwhile (a bounce in this batch, an
                    # unsubscribe) get no more copies, as the main recipients get no letter.
                    batch.letters = _letter_cache(contacts)
                    semaphore.renew()
                    last_check, since_check = clock, 0
                if batch.keeper is not None and not batch.keeper.holds():
                    _stop_lease_lost(batch)
                    return
                if batch.should_stop is not None and batch.should_stop():
                    _stop_for_worker(batch)
                    return
                if clock - started >= lease / 2:
                    # Stay well inside the lease and the job's timeout; another job goes on.
                    result.released += _hand_back(batch)
                    result.stopped = "the batch used its time; the rest goes to the next job"
                    batch.commit()
                    return
                since_check += 1
                if batch.copies_stale:
                    batch.letters, batch.copies_stale = _letter_cache(contacts), False
                if not _send_row(batch, row, contacts, stop_list, limiter, connection):
                    return
    finally:
        semaphore.release()


@contextlib.contextmanager
def _quietly() -> Iterator[None]:
    """contextlib.suppress(Exception), except the job's timeout: RQ's JobTimeoutException
    is an Exception, and a batch that swallowed it would run on with no timeout at all."""
    try:
        yield
    except BaseTimeoutException:
        raise
    except Exception:  # noqa: S110 - what suppress(Exception) did
        pass


class _WorkerStopping(Exception):
    """Raised out of a pace or connection-slot wait when the worker is asked to stop."""


# How often a wait for the pace or a connection slot asks whether the worker is stopping.
STOP_CHECK_SECONDS = 0.5


def _stoppable_sleep(should_stop: Callable[[], bool] | None) -> Callable[[float], None]:
    """time.sleep in slices of STOP_CHECK_SECONDS, raising _WorkerStopping once asked to."""

    def sleep(seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            if should_stop is not None and should_stop():
                raise _WorkerStopping
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, STOP_CHECK_SECONDS))

    return sleep


def _stop_for_worker(batch: _Batch) -> None:
    # Ctrl-C or a deploy: the letter in hand was sent; the rest is not held until the
    # lease runs out but goes back now, for the next worker.
    batch.result.released += _hand_back(batch)
    batch.result.stopped = "the worker is stopping; the rest goes to the next job"
    batch.commit()


def _stop_lease_lost(batch: _Batch) -> None:
    # Whatever is still ours goes back; if the database is away this fails too, and the
    # reconciler takes the rows back when their lease runs out.
    with _quietly():
        batch.result.released += _hand_back(batch)
        batch.commit()
    batch.result.stopped = "the claim's lease could not be renewed; the rows go back"
    log.warning("campaign %s: %s", batch.campaign_id, batch.result.stopped)


def _stop_for_status(batch: _Batch, status: str | None) -> None:
    cancelled = status == CampaignStatus.CANCELLED
    batch.result.released += _release(
        batch.claim_id,
        campaign_id=batch.campaign_id,
        status=(DeliveryStatus.CANCELLED if cancelled else DeliveryStatus.QUEUED).value,
        note="",
        next_attempt_at=None,
    )
    batch.result.stopped = f"the campaign is {status}"
    batch.commit()


def _letter_error(composed: Any) -> str:
    problems = [p.message for p in composed.letter.problems if p.severity == "error"]
    return "; ".join(problems) or composed.error or "the letter could not be built"


def _send_row(
    batch: _Batch,
    row: _Row,
    contacts: dict[int, dict[str, Any]],
    stop_list: _StopList,
    limiter: RateLimiter,
    connection: SmtpConnection,
) -> bool:
    """Send one row and commit its outcome; False when the batch must stop."""
    result = batch.result
    if row.contact_id in stop_list.trashed:
        # Moved to the trash while in this batch: cancelled (in doubt stays in doubt).
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.CANCELLED.value,
            reason="contact_deleted",
            last_reply="not sent: the contact was moved to the trash",
        )
        batch.commit()
        return True
    if row.step > 0 and row.contact_id in stop_list.answered:
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.CANCELLED.value,
            reason="replied",
            last_reply="not sent: they replied in person before this follow-up went out",
        )
        batch.commit()
        return True
    if row.email.strip().lower() in stop_list.suppressed:
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.SUPPRESSED.value,
            reason="suppressed",
            last_reply="the address was put on the suppression list after the launch",
        )
        result.suppressed += 1
        batch.commit()
        return True
    return _build_and_send(batch, row, contacts, limiter, connection)


def _build_and_send(
    batch: _Batch,
    row: _Row,
    contacts: dict[int, dict[str, Any]],
    limiter: RateLimiter,
    connection: SmtpConnection,
) -> bool:
    result = batch.result
    if batch.stop_watch is not None:
        # A PING written now, if the watch's answer needs confirming, is answered while
        # the letter is built; its PONG is read in the stop check below (decision 0082).
        batch.stop_watch.prepare()
    contact = contacts.get(row.contact_id) if row.contact_id else None
    data, recipient, copies, language, error = _build(batch, row, contact)
    signer = batch.settings.dkim_signer
    if data is not None and signer is not None:
        try:
            data = signer.sign(data)
        except DkimSigningError as problem:
            # Told to sign, never sent unsigned: retried like a server's refusal (0042).
            log.warning("delivery %s: %s", row.id, problem)
            refused = SendOutcome(Outcome.TRANSIENT, None, f"not sent: {problem}")
            return _apply(batch, row, refused, data, language)
    if data is None:
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.FAILED.value,
            reason="letter_error",
            last_reply=error,
            language=language,
        )
        result.failed += 1
        batch.commit()
        return True
    try:
        limiter.acquire()
        if batch.should_stop is not None and batch.should_stop():
            raise _WorkerStopping
    except _WorkerStopping:
        # Asked during the pace's wait (or right after it): this letter is not sent either.
        _stop_for_worker(batch)
        return False
    except DailyLimitReached as limit:
        result.released += _release(
            batch.claim_id,
            campaign_id=batch.campaign_id,
            status=DeliveryStatus.QUEUED.value,
            note=str(limit),
            next_attempt_at=_now() + timedelta(seconds=limit.retry_after),
        )
        result.stopped = str(limit)
        batch.commit()
        return False
    # Checked at the last moment, after the letter was built and the pace's wait: a pause
    # stops every worker within the message each may have in flight. The batch's StopWatch
    # answers without a round trip unless Redis said the flag changed (decision 0082).
    if _stop_requested(batch):
        return False
    # And the lease, again: the pace's wait may have outlasted it, and another worker may
    # already have taken the row back.
    if batch.keeper is not None and not batch.keeper.holds():
        _stop_lease_lost(batch)
        return False
    outcome = connection.send(batch.envelope_from, recipient, data, copies=copies)
    return _apply(batch, row, outcome, data, language)


def _stop_requested(batch: _Batch) -> bool:
    """Whether staff paused or cancelled the campaign: the flag, the database if in doubt.

    Pause and cancel raise a flag in Redis (campaigns.stop_flag_key); the database stays the
    truth, read only when the flag is up or cannot be read. The batch's StopWatch knows the
    flag without a round trip until Redis says it changed (decision 0082); when it cannot
    say, Redis is asked as before.
    """
    is_up = batch.stop_watch.is_up() if batch.stop_watch is not None else None
    if is_up is None:
        is_up = _ask_stop_flag(batch.campaign_id)
    if is_up is False:
        return False
    status = _campaign_status(batch.campaign_id)
    if status == CampaignStatus.SENDING:
        return False
    _stop_for_status(batch, status)
    return True


def _ask_stop_flag(campaign_id: int) -> bool | None:
    """The stop flag read from Redis (one round trip); None when Redis cannot say."""
    try:
        return bool(get_redis().exists(stop_flag_key(campaign_id)))
    except RedisError:
        return None


def _build(
    batch: _Batch, row: _Row, contact: dict[str, Any] | None
) -> tuple[bytes | None, str, list[str], str, str]:
    """(message bytes or None, envelope recipient, copy recipients, language, error)."""
    if contact is None:
        return None, "", [], "", "the contact was deleted after the launch"
    headers: dict[str, str] = {}
    if batch.has_list_unsubscribe:
        headers["List-Unsubscribe"] = f"<{unsubscribe_url(row.unsubscribe_token)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        headers["List-Id"] = batch.list_id
        kind = "followup" if row.step > 0 else "campaign"
        headers["Feedback-ID"] = feedback_id(batch.campaign_id, kind, batch.sender)
    if row.step > 0:
        headers.update(thread_headers(batch.earlier_ids.get(row.id, [])))
        if row.step not in batch.step_sources:
            return None, "", [], "", f"follow-up {row.step}: its statement was deleted"
    source = batch.step_sources.get(row.step, batch.source) if row.step > 0 else batch.source
    # Written to the address the ledger holds, even if the contact's has changed since.
    recipient_data = SimpleNamespace(**{**contact, "email": row.email})
    try:
        composed = compose_letter(
            source,
            recipient_data,
            rules=batch.rules,
            sender=batch.sender,
            reply_to=_reply_to(batch, row),
            message_id=row.message_id,
            extra_headers=headers,
            attach_pdf=batch.is_pdf_attached,
            html_transform=batch.tracking.transform_for(row.id) if batch.tracking else None,
            cases=batch.cases,
            cache=batch.letters,
            fixed_subject=batch.reply_subjects.get(row.id),
            files=batch.files if row.step == 0 else (),
        )
    except (LookupError, MessageError) as error:
        return None, "", [], "", str(error)
    except BaseTimeoutException:
        raise  # the job's timeout (an Exception in RQ): the letter was not built, not bad
    except Exception as error:
        # A bug in rendering one letter must not stop the campaign nor loop the batch for
        # ever: the row records it, the log keeps the traceback.
        log.exception("delivery %s: the letter could not be built", row.id)
        return None, "", [], "", f"the letter could not be built ({type(error).__name__})"
    language = composed.letter.language
    if composed.message is None:
        return None, "", [], language, _letter_error(composed)
    try:
        recipient = encode_address(row.email, field="To")
        copies = [encode_address(cc, field="Cc") for cc in composed.letter.cc_addresses]
    except MessageError as error:
        return None, "", [], language, str(error)
    return composed.message, recipient, copies, language, ""


def _tracking(campaign: Campaign, commit: Callable[[], None]) -> LetterTracking | None:
    if not (campaign.is_open_tracking or campaign.is_click_tracking):
        return None
    # The launch checked the address, but a worker may run with other settings than the web
    # app. A letter whose pixel and links point nowhere is worse than one without them: the
    # reader's links must work, the counts may be missing (docs/decisions/0018).
    problem = base_url_problem(
        str(current_app.config.get("PUBLIC_URL") or ""), debug=current_app.debug
    )
    if problem:
        log.warning(
            "campaign %s: letters sent without open and click tracking: %s", campaign.id, problem
        )
        return None
    return LetterTracking(
        campaign.id,
        base_url=public_url(),
        opens=campaign.is_open_tracking,
        clicks=campaign.is_click_tracking,
        commit=commit,
    )


def _reply_to(batch: _Batch, row: _Row) -> str:
    # The tracked reply address only where the campaign names no person to answer to:
    # a Reply-To staff chose must not be replaced behind their back.
    if batch.reply_to:
        return batch.reply_to
    return reply_address(row.id) or ""


def _apply(batch: _Batch, row: _Row, outcome: SendOutcome, data: bytes, language: str) -> bool:
    result = batch.result
    now = _now()
    attempts = row.attempts + 1
    common: dict[str, Any] = {
        "attempts": attempts,
        "last_code": outcome.code,
        "last_reply": outcome.summary[:2000],
        "language": language,
    }
    if outcome.kind == Outcome.SENT:
        if outcome.refused_copies:
            common["last_reply"] += " (copies refused: " + ", ".join(outcome.refused_copies) + ")"
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.SENT.value,
            sent_at=now,
            reason="",
            message_sha256=hashlib.sha256(data).hexdigest(),
            # Level 1: a third of the size for a tenth of the default level's time.
            message_blob=zlib.compress(data, 1),
            **common,
        )
        result.sent += 1
        batch.errors_in_a_row = 0
        batch.commit()
        return True
    if outcome.kind == Outcome.AUTH_FAILED:
        _pause_for_account(batch, outcome)
        return False
    if outcome.kind == Outcome.PERMANENT and outcome.phase in ("connect", "mail"):
        # Refused before any recipient was named (a 554 greeting, "sender not allowed"):
        # every letter would fail the same way, so nobody is marked failed for it.
        refused = "the connection" if outcome.phase == "connect" else "the sender"
        _pause(
            batch,
            f"the SMTP server refused {refused} ({outcome.summary}): check the From address "
            "and that the account may send from it, then resume",
        )
        return False
    if outcome.kind == Outcome.PERMANENT and outcome.is_hard_bounce:
        _record(
            row, batch.claim_id, status=DeliveryStatus.BOUNCED.value, reason="hard_bounce", **common
        )
        _suppress(row.email, batch.campaign_id, outcome)
        batch.copies_stale = True  # the address may be another letter's copy (Cc)
        result.bounced += 1
        batch.commit()
        # One bad address says nothing about the server: it does not count as an error.
        return True
    if outcome.kind == Outcome.PERMANENT:
        _record(
            row, batch.claim_id, status=DeliveryStatus.FAILED.value, reason="rejected", **common
        )
        result.failed += 1
    elif outcome.kind == Outcome.IN_DOUBT and now < batch.deadline:
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.IN_DOUBT.value,
            bump_duplicates=True,
            next_attempt_at=now + backoff_delay(attempts),
            **common,
        )
        result.in_doubt += 1
    elif now >= batch.deadline:
        common["last_reply"] = (
            f"gave up after {attempts} attempts (the campaign retries for "
            f"{_hours(batch)} hours); last answer: {outcome.summary}"
        )[:2000]
        if outcome.kind == Outcome.IN_DOUBT:
            # This last try may have arrived: in doubt for good, not failed.
            _record(
                row,
                batch.claim_id,
                status=DeliveryStatus.IN_DOUBT.value,
                bump_duplicates=True,
                reason="expired",
                next_attempt_at=None,
                **common,
            )
            result.in_doubt += 1
        else:
            _record(
                row, batch.claim_id, status=DeliveryStatus.FAILED.value, reason="expired", **common
            )
            result.failed += 1
    else:
        _record(
            row,
            batch.claim_id,
            status=DeliveryStatus.DEFERRED.value,
            next_attempt_at=min(now + backoff_delay(attempts), batch.deadline),
            **common,
        )
        result.deferred += 1
    batch.errors_in_a_row += 1
    batch.last_error = outcome.summary
    threshold = _config("SEND_ERROR_THRESHOLD")
    if threshold and batch.errors_in_a_row >= threshold:
        reason = _l(
            "paused after %(count)s messages in a row failed; the SMTP server's last answer "
            "was: %(answer)s. Check the server and the account, then resume",
            count=batch.errors_in_a_row,
            answer=batch.last_error,
        )
        _pause(batch, reason)
        return False
    batch.commit()
    return True


def _hours(batch: _Batch) -> int:
    campaign = db.session.get(Campaign, batch.campaign_id)
    return campaign.give_up_hours if campaign else 0


def _pause_for_account(batch: _Batch, outcome: SendOutcome) -> None:
    if outcome.tls is not None:  # a certificate refused, no STARTTLS: words in campaign/tls.py
        where = f"{batch.settings.host}:{batch.settings.port}"
        _pause(batch, tls.campaign_paused(outcome.tls, where, outcome.reply))
        return
    # A lazy reason: stored as its message, read in each reader's language.
    _pause(
        batch,
        _l(
            "the SMTP server refused the login (%(answer)s): check the account's user name "
            "and password",
            answer=outcome.summary,
        ),
    )


def _pause(batch: _Batch, reason: str | LazyString) -> None:
    batch.errors_in_a_row = 0  # a resumed campaign counts afresh
    campaign = db.session.get(Campaign, batch.campaign_id)
    if campaign is not None:
        # A lazy reason is kept as its message, read later in each reader's language.
        pause_campaign(campaign, reason=stored_text.dump(reason))
    batch.result.released += _hand_back(batch)
    batch.result.stopped = str(reason)
    log.warning("campaign %s paused: %s", batch.campaign_id, reason)
    batch.commit()


def _suppress(email: str, campaign_id: int, outcome: SendOutcome) -> None:
    with contextlib.suppress(ValueError):  # an address the list cannot hold stays bounced
        suppress_address(
            email,
            SuppressionReason.HARD_BOUNCE,
            campaign_id=campaign_id,
            note=f"the server refused the address: {outcome.summary}"[:2000],
        )


# --- where a campaign stands ---------------------------------------------------------------


def has_due_rows(campaign_id: int) -> bool:
    """Whether the campaign has rows a worker could claim now."""
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    Delivery.campaign_id == campaign_id,
                    Delivery.status.in_(_CLAIMABLE),
                    Delivery.next_attempt_at <= _now(),
                )
            )
        )
    )


def due_count(campaign_id: int) -> int:
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(
                Delivery.campaign_id == campaign_id,
                Delivery.status.in_(_CLAIMABLE),
                Delivery.next_attempt_at <= _now(),
            )
        )
        or 0
    )


def finish_if_done(campaign_id: int) -> bool:
    """Mark a sending campaign finished when none of its rows is left to send or retry."""
    left = db.session.scalar(select(exists().where(Delivery.campaign_id == campaign_id, is_open())))
    if left:
        return False
    now = _now()
    done = db.session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SENDING)
        .values(status=CampaignStatus.FINISHED.value, finished_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    finished = bool(getattr(done, "rowcount", 0))
    if finished:
        record_event("campaign.finish", target_type="campaign", target_id=campaign_id)
        webhook_events.record_webhook_event(
            WebhookEventType.CAMPAIGN_FINISHED, webhook_payloads.campaign_event(campaign_id, now)
        )
        # Co-signers who asked are told now that every letter has gone (not at the launch:
        # a paced, paused or cancelled campaign has not "gone out" then).
        campaign = db.session.get(Campaign, campaign_id)
        if campaign is not None:
            notify_signers(campaign)
    return finished


# --- the reconciler ------------------------------------------------------------------------


LOST_NOTE = "the worker was lost; re-queued"
IN_DOUBT_NOTE = (
    "the worker was lost while this message may have been on its way; it is sent again "
    "with the same Message-ID"
)


def _expire_leases(report: ReconcileReport) -> None:
    now = _now()
    stale = db.session.execute(
        select(Delivery.id, Delivery.claimed_by, Campaign.status)
        .join(Campaign, Campaign.id == Delivery.campaign_id)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.lease_until < now)
        .order_by(Delivery.id)
    ).all()
    first_of_claim: set[str] = set()
    for row_id, claim_id, campaign_status in stale:
        guard = and_(
            Delivery.id == row_id,
            Delivery.status == DeliveryStatus.SENDING,
            Delivery.claimed_by == claim_id,
            Delivery.lease_until < now,
        )
        values: dict[str, Any] = {"lease_until": None, "updated_at": now, "next_attempt_at": now}
        in_flight = claim_id not in first_of_claim
        if in_flight:
            # A batch sends its rows in id order and commits each outcome, so of the rows
            # it still held only the first can have been in flight when it was lost. It
            # counts as a try: it may have been handed to the server.
            values.update(
                status=DeliveryStatus.IN_DOUBT.value,
                possible_duplicates=Delivery.possible_duplicates + 1,
                attempts=Delivery.attempts + 1,
                last_reply=IN_DOUBT_NOTE,
            )
            report.in_doubt += 1
        else:
            values.update(status=unless_gone(DeliveryStatus.QUEUED.value), last_reply=LOST_NOTE)
        if campaign_status == CampaignStatus.CANCELLED:
            # Nothing more goes out; a row that may have gone stays in doubt, for good.
            if not in_flight:
                values["status"] = unless_gone(DeliveryStatus.CANCELLED.value)
            values.update(reason="cancelled", next_attempt_at=None)
            report.cancelled += 1
        first_of_claim.add(claim_id)
        report.requeued += 1
        db.session.execute(
            update(Delivery)
            .where(guard)
            .values(**values)
            .execution_options(synchronize_session=False)
        )


def _cancel_leftovers(report: ReconcileReport) -> None:
    # A batch that hands rows back as queued (pause, time budget, no free connection) can
    # do so just after staff cancelled the campaign, whose cancel saw those rows as
    # `sending`: without this they would wait in a cancelled campaign for ever.
    now = _now()
    result = db.session.execute(
        update(Delivery)
        .where(
            Delivery.status.in_(_CLAIMABLE),
            Delivery.reason == "",
            Delivery.campaign_id.in_(
                select(Campaign.id).where(Campaign.status == CampaignStatus.CANCELLED)
            ),
        )
        .values(
            status=unless_gone(DeliveryStatus.CANCELLED.value),
            reason="cancelled",
            next_attempt_at=None,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    report.cancelled += int(getattr(result, "rowcount", 0) or 0)


def waiting_send_jobs() -> set[int]:
    """Campaign ids that have a send job waiting in the queue."""
    waiting: set[int] = set()
    for job in get_queue().jobs:
        if job is not None and job.func_name == SEND_JOB and job.args:
            try:
                waiting.add(int(job.args[0]))
            except (TypeError, ValueError):
                continue
    return waiting


def reconcile(*, commit: Callable[[], None]) -> ReconcileReport:
    """Take back stale leases, re-queue lost send jobs and finish campaigns with nothing left.

    The database is the truth: whatever Redis lost (a flush, a restart) is queued again
    from the ledger. Running it twice changes nothing more.
    """
    report = ReconcileReport()
    _expire_leases(report)
    _cancel_leftovers(report)
    commit()
    sending = list(
        db.session.scalars(select(Campaign.id).where(Campaign.status == CampaignStatus.SENDING))
    )
    waiting = waiting_send_jobs() if sending else set()
    for campaign_id in sending:
        if finish_if_done(campaign_id):
            report.finished.append(campaign_id)
            continue
        if campaign_id in waiting:
            continue
        due = due_count(campaign_id)
        if due:
            report.enqueued[campaign_id] = enqueue_send_jobs(campaign_id, due)
    commit()
    return report


def chain_next_batch(campaign_id: int) -> None:
    """Queue one more send job for the campaign (after commit)."""
    enqueue_send_jobs(campaign_id, 1)
