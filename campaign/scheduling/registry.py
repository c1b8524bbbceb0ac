"""Every kind of schedule the tick fires, what fires it, and the work after each tick: one list.

create_app installs it on the app (`register_tick_actions`), so the worker's periodic tick,
`campaign tick` and the tests fire from the same registry, and a kind missing from it is
seen here rather than found to never fire. Nothing registers itself by being imported
(decision 0056).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from flask import Flask

from campaign.models.schedule import ScheduleKind
from campaign.scheduling import actions, tick
from campaign.services.backups import scheduled as scheduled_backups
from campaign.services.contacts import trash
from campaign.services.privacy import retention
from campaign.services.schedules import advocacy_calendar
from campaign.services.sending import followups
from campaign.services.sign_on import invitations


def tick_registry() -> tick.Registry:
    """What each ScheduleKind does when it fires, and what runs after the fires commit."""
    return tick.Registry(
        kinds={
            ScheduleKind.SEND_AT.value: tick.Kind(
                actions.fire_send_at, on_missed=actions.missed_send_at
            ),
            ScheduleKind.YEARLY_CAMPAIGN.value: tick.Kind(
                actions.fire_yearly, next_run=actions.next_yearly_run
            ),
            # Past the grace period a follow-up still serves: the people are still waiting.
            ScheduleKind.FOLLOW_UP.value: tick.Kind(followups.tick_follow_up, late_ok=True),
            # The tick sets next_run_at after the action: it must ask the same question
            # fire_reminder does, or a yearly reminder (built-in day, case anniversary)
            # would stop after one fire.
            ScheduleKind.REMINDER.value: tick.Kind(
                advocacy_calendar.fire_reminder, next_run=advocacy_calendar.next_reminder_run
            ),
            ScheduleKind.SIGN_ON_REMINDER.value: tick.Kind(invitations.fire_sign_on_reminder),
            # Daily system schedules (decision 0088): late is still worth doing, and after
            # downtime they run once, not once per day missed (next_daily_run).
            ScheduleKind.RETENTION.value: tick.Kind(
                retention.fire_retention, next_run=retention.next_daily_run, late_ok=True
            ),
            ScheduleKind.BACKUP.value: tick.Kind(
                scheduled_backups.fire_backup, next_run=retention.next_daily_run, late_ok=True
            ),
        },
        # The staff reminder e-mails for what the fires recorded; the trash's purge.
        after_tick=(advocacy_calendar.email_reminders, trash.purge_after_tick),
    )


def ensure_system_schedules(now: datetime, commit: Callable[[], None]) -> None:
    """Make the daily retention and backup schedules when missing (never by a migration: the
    worker's periodic tick calls this first, so a fresh database gets them on its own)."""
    retention.ensure_retention_schedule(now, commit)
    scheduled_backups.ensure_backup_schedule(now, commit)


def register_tick_actions(app: Flask) -> None:
    """Install the registry on `app` (create_app calls it)."""
    tick.install(app, tick_registry())
