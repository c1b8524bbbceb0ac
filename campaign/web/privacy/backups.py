"""The backups page (admins): the last daily backup's age and size, the archives kept, and a
warning when none worked for 48 hours (also on the start page, for admins)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, render_template
from flask_babel import format_datetime, format_decimal

from campaign.models import Role
from campaign.scheduling.stored_text import read
from campaign.services.backups import scheduled
from campaign.web.access import allow, may

bp = Blueprint("backups", __name__, url_prefix="/privacy/backups")


def size_text(size: int) -> str:
    """A file's size in megabytes, in the reader's number format ("12,3")."""
    return str(format_decimal(size / 1_000_000, format="#,##0.0"))


@dataclass(frozen=True)
class Notice:
    """What the warning says: the status, the last good backup's age in hours, the error."""

    status: scheduled.BackupStatus
    hours: int | None
    error: str
    # When the run that never finished was queued or started, in words ("" when none).
    interrupted: str = ""


def _notice(status: scheduled.BackupStatus) -> Notice:
    return Notice(
        status,
        scheduled.hours_old(status.age) if status.age is not None else None,
        read(status.last.error) if status.has_failed and status.last and status.last.error else "",
        str(format_datetime(status.interrupted_since, "short"))
        if status.interrupted_since is not None
        else "",
    )


@bp.route("/")
@allow(Role.ADMIN)
def index() -> Any:
    status = scheduled.backup_status()
    return render_template(
        "privacy/backups.html",
        status=status,
        notice=_notice(status),
        size_text=size_text,
        deploy_section=scheduled.DEPLOY_SECTION,
    )


@bp.app_template_global("backup_notice")
def backup_notice() -> Notice | None:
    """The start page's warning for admins: backups not configured, no good backup for 48
    hours, the last failed, or one never finished. The folder is not listed (a hung network
    disk would hang the start page)."""
    if not may(Role.ADMIN):
        return None
    status = scheduled.backup_status(with_archives=False)
    if not (
        not status.settings.is_configured
        or status.is_stale
        or status.has_failed
        or status.interrupted_since
    ):
        return None
    return _notice(status)
