"""RQ jobs: ids in, one service call, commit; permanent failures are recorded on the row."""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime

from campaign.extensions import db
from campaign.scheduling import registry, tick
from campaign.services.contacts import importing
from campaign.services.replies import mailboxes
from campaign.services.sending import batches as sending
from campaign.services.sending import campaigns as campaign_service
from campaign.services.sending import notices, presend_runs
from campaign.tracking import buffer
from workers.context import job_context, stop_requested

log = logging.getLogger(__name__)


def import_contacts(import_id: int) -> None:
    """Run contact import `import_id`; on failure nothing is imported and the row says why."""
    with job_context():
        # Committed before the work starts: a second delivery of this job finds it taken.
        if not importing.claim_import(import_id):
            db.session.rollback()
            log.info("contact import %s is not queued (already taken); nothing to do", import_id)
            return
        db.session.commit()
        try:
            importing.run_import(import_id)
            db.session.commit()
        except Exception as error:
            # The contacts were never committed; record the failure in a fresh transaction.
            db.session.rollback()
            log.exception("contact import %s failed", import_id)
            importing.mark_import_failed(import_id, error)
            db.session.commit()
        # The contacts are in the database (or the user must upload again): the file goes.
        importing.delete_upload(import_id)


def _worker_name() -> str:
    # gethostname, not getfqdn: the latter may wait seconds on a slow resolver.
    return f"{socket.gethostname()}:{os.getpid()}"


def send_batch(campaign_id: int) -> None:
    """Send the next batch of campaign `campaign_id`'s due deliveries; chain one more if due."""
    with job_context():
        result = sending.send_batch(
            campaign_id,
            worker=_worker_name(),
            commit=db.session.commit,
            should_stop=stop_requested,
        )
        if result.has_more:
            sending.chain_next_batch(campaign_id)
            db.session.commit()


def reconcile() -> None:
    """Take back stale leases, re-queue work Redis lost, finish campaigns with nothing left."""
    with job_context():
        report = sending.reconcile(commit=db.session.commit)
        if report.requeued or report.enqueued or report.finished:
            log.info("reconcile: %s", report)
        from campaign.services.contacts import bulk_edit as contact_bulk_edit

        requeued = contact_bulk_edit.requeue_stale()
        db.session.commit()
        if requeued:
            log.info("reconcile: contact bulk edits queued again: %s", requeued)
        from campaign.services.webhooks import delivery as webhook_delivery

        # Retries whose time has come and claims a lost worker held (decision 0068).
        webhook_delivery.requeue_due()
        db.session.commit()
        from campaign.services.privacy import subject_export

        # Access-request exports are downloadable for a day, then their files go (0089).
        subject_export.remove_expired()
        db.session.commit()
        from campaign.services.accounts import api_keys

        # Answers kept for Idempotency-Key retries hold contacts' data: a day, no more.
        api_keys.forget_old_idempotency_answers()
        db.session.commit()


def poll_inboxes() -> None:
    """Poll each enabled IMAP mailbox whose next poll has come (failing ones back off)."""
    with job_context():
        for mailbox in mailboxes.due_mailboxes():
            mailbox_id = mailbox.id  # read now: after a failure the row may not load
            try:
                report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
            except Exception as error:
                # One broken mailbox must not stop the others. The error's text is left out:
                # database errors quote their parameters, which may hold a stored secret.
                db.session.rollback()
                log.error(
                    "poll-inbox: mailbox %s failed with %s at %s; the others are polled",
                    mailbox_id,
                    error.__class__.__name__,
                    mailboxes.where_it_failed(error),
                )
                continue
            if report.fetched or report.errors:
                log.info("poll-inbox: mailbox %s: %s", mailbox_id, report.summary())


def flush_tracking() -> None:
    """Write the open and click hits buffered in Redis to the database, batch by batch."""
    with job_context():
        report = buffer.flush_hits(commit=db.session.commit)
        if report.written or report.dropped or report.recovered_lists:
            log.info("flush-tracking: %s", report)


def run_scheduler() -> None:
    """Fire every schedule that is due now (send-at, yearly, follow-ups, reminders)."""
    with job_context():
        now = datetime.now(UTC)
        # The daily retention and backup schedules, made here when missing (decision 0088).
        registry.ensure_system_schedules(now, db.session.commit)
        # The tick commits after each fire and claims each once, so a second tick on another
        # machine (the Redis lock expired mid-run) finds the fires taken and does nothing.
        report = tick.tick(now, commit=db.session.commit)
        for line in report.lines:
            log.info(
                "scheduler: %s %s %r due %s: %s",
                line.outcome,
                line.kind,
                line.name,
                line.due_at.isoformat(),
                line.detail,
            )


def send_notice(kind: str, target_id: int) -> None:
    """Send one notice (a signer's confirmation link, say): campaign.services.sending.notices."""
    with job_context():
        sent = notices.send_notice(kind, target_id, commit=db.session.commit)
        log.info("notice %s for %s: %d e-mail(s) sent", kind, target_id, sent)


def apply_contact_bulk_edit(edit_id: int) -> None:
    """Apply contact bulk edit `edit_id` batch by batch; a failure is recorded on its row."""
    from campaign.services.contacts import bulk_edit as contact_bulk_edit

    with job_context():
        if not contact_bulk_edit.claim_bulk_edit(edit_id):
            db.session.rollback()
            log.info("contact bulk edit %s is not queued (already taken); nothing to do", edit_id)
            return
        db.session.commit()
        try:
            contact_bulk_edit.run_bulk_edit(
                edit_id, commit=db.session.commit, should_stop=stop_requested
            )
            db.session.commit()
        except contact_bulk_edit.BulkEditTakenOver:
            db.session.rollback()  # the reconciler gave it to another run: that run finishes it
            log.warning("contact bulk edit %s was queued again; this run ends", edit_id)
        except Exception as error:
            db.session.rollback()
            log.exception("contact bulk edit %s failed", edit_id)
            contact_bulk_edit.mark_failed(edit_id, error)
            db.session.commit()


def deliver_webhooks(endpoint_id: int) -> None:
    """Send webhook endpoint `endpoint_id`'s due deliveries in event order (services/webhooks)."""
    from campaign.services.webhooks import delivery as webhook_delivery

    with job_context():
        report = webhook_delivery.deliver_webhooks(
            endpoint_id, commit=db.session.commit, should_stop=stop_requested
        )
        if report.retrying or report.failed:
            log.info("webhooks: endpoint %s: %s", endpoint_id, report)


def check_letters(campaign_id: int, run_key: str) -> None:
    """Run the pre-send check `run_key` of campaign `campaign_id`; store its result (0071)."""
    with job_context():
        if not presend_runs.claim(campaign_id, run_key):
            db.session.rollback()
            log.info(
                "pre-send check %s of campaign %s is not queued; nothing to do",
                run_key,
                campaign_id,
            )
            return
        db.session.commit()
        try:
            presend_runs.run_job(
                campaign_id,
                run_key,
                campaign_service.recipients_query,
                commit=db.session.commit,
            )
        except Exception as error:
            from rq.timeouts import JobTimeoutException

            db.session.rollback()
            log.exception("pre-send check of campaign %s failed", campaign_id)
            timed_out = isinstance(error, JobTimeoutException)
            presend_runs.mark_failed(campaign_id, run_key, error, timed_out=timed_out)
            db.session.commit()


def export_subject(export_id: int, run_key: str) -> None:
    """Make access-request export `export_id` (run `run_key`): its ZIP and progress (0089)."""
    from campaign.services.privacy import subject_export

    with job_context():
        if not subject_export.claim(export_id, run_key):
            db.session.rollback()
            log.info("subject export %s is not queued; nothing to do", export_id)
            return
        db.session.commit()
        try:
            subject_export.run_job(export_id, run_key, commit=db.session.commit)
        except Exception as error:
            db.session.rollback()
            log.exception("subject export %s failed", export_id)
            subject_export.mark_failed(export_id, run_key, error)
            db.session.commit()


def run_scheduled_backup(schedule_id: int, due_at: str) -> None:
    """Write the daily backup the scheduler queued (campaign.services.backups.scheduled)."""
    from campaign.services.backups import scheduled

    with job_context():
        record = scheduled.run_scheduled_backup(
            schedule_id=schedule_id,
            due_at=datetime.fromisoformat(due_at),
            commit=db.session.commit,
        )
        db.session.commit()
        if record is not None:
            log.info("daily backup %s: %s", record.file, "written" if record.ok else "failed")
