"""Writing the delivery ledger: new rows, the send jobs that work them, the in-doubt rule.

The launch (campaigns.py), the follow-up sweeps (followups.py), the reconciler
(batches.py) and the trash (contacts/trash.py) all write deliveries; the pieces they
share live here, below all of them, so none of them has to import another for it.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import case, or_

from campaign.extensions import db
from campaign.mail import make_message_id
from campaign.models import Campaign, Delivery, DeliveryStatus
from campaign.queue import enqueue_after_commit

SEND_JOB = "workers.jobs.send_batch"
# Launch queues at most this many send jobs at once; the reconciler tops up the rest.
MAX_JOBS_PER_LAUNCH = 500


def new_delivery_rows(
    campaign: Campaign, contacts: Sequence[tuple[int, str, bool]], domain: str
) -> list[dict[str, Any]]:
    """Ledger rows (step 0; a follow-up sets its own) for (contact id, address, is suppressed).

    Each row gets its Message-ID now (kept through every retry) and its unsubscribe token;
    a suppressed address gets a row too, marked suppressed, so the ledger says why.
    """
    now = datetime.now(UTC)
    return [
        {
            "campaign_id": campaign.id,
            "contact_id": contact_id,
            "step": 0,
            "email": email,
            "status": (
                DeliveryStatus.SUPPRESSED.value if is_suppressed else DeliveryStatus.QUEUED.value
            ),
            "reason": "suppressed" if is_suppressed else "",
            "message_id": make_message_id(domain),
            "unsubscribe_token": secrets.token_urlsafe(18),
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for contact_id, email, is_suppressed in contacts
    ]


def enqueue_send_jobs(campaign_id: int, deliveries: int) -> int:
    """Queue enough send jobs (after commit) to cover `deliveries` rows; return how many."""
    batch = max(1, int(current_app.config["SEND_BATCH_SIZE"]))
    jobs = min(MAX_JOBS_PER_LAUNCH, math.ceil(deliveries / batch))
    timeout = int(current_app.config["SEND_LEASE_SECONDS"])
    for _ in range(jobs):
        enqueue_after_commit(db.session(), SEND_JOB, campaign_id, job_timeout=timeout)
    return jobs


def may_have_gone() -> Any:
    """SQL: a try of this row may have reached the server (its outcome was never known)."""
    return or_(Delivery.possible_duplicates > 0, Delivery.status == DeliveryStatus.IN_DOUBT.value)


def unless_gone(status: str) -> Any:
    """SQL for a row's new status: `status`, but in_doubt for a row that may have gone.

    Whatever happens to a row later (cancelled, suppressed, refused, given up, handed back),
    "possibly delivered" is never written over: the ledger must not say less than the truth.
    """
    return case((may_have_gone(), DeliveryStatus.IN_DOUBT.value), else_=status)
