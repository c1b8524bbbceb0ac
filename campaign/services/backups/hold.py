"""The restore hold: a restored installation sends nothing until an admin confirms.

A copy restored from a backup holds the ledger of last week: campaigns that were sending,
schedules that were due. Sending them from the copy while the original still runs (a drill)
or before anyone has looked (a disaster recovery) would write to people twice. So the
restore places a hold, kept in `installation_settings` (it travels with the database, not
with a process): while it stands the tick fires nothing, launches are refused, send jobs
send nothing, and every staff page says so. An admin lifts it on the restore page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Campaign, CampaignStatus, InstallationSetting, User
from campaign.models.schedule import Schedule, ScheduleKind
from campaign.scheduling import stored_text
from campaign.services.accounts.audit import record_event

SETTING = "restore_hold"
# Schedules that write to people and that the hold turns off for good: the release turns
# none back on (a follow-up due since the backup would go out at once), a person does.
# After the release: the ids of the schedules the hold turned off, until each is on again.
SCHEDULES_OFF = "restore_schedules_off"
HELD_SCHEDULE_KINDS = (
    ScheduleKind.FOLLOW_UP.value,
    ScheduleKind.YEARLY_CAMPAIGN.value,
    ScheduleKind.SIGN_ON_REMINDER.value,
)
# The reason a campaign paused by the restore shows on its pages (a stored_text message).
PAUSED_BY_RESTORE = _l(
    "paused by the restore from a backup: sending waits until an administrator confirms "
    "on the restore page, then resume it here"
)


@dataclass(frozen=True)
class RestoreHold:
    """Where the held copy came from and what the restore stopped."""

    restored_at: datetime
    archive_created_at: datetime | None
    archive_name: str = ""
    schema_revision: str = ""
    paused_campaigns: list[int] = field(default_factory=list)
    unscheduled_campaigns: list[int] = field(default_factory=list)
    # Follow-up, yearly and sign-on reminder schedules the hold turned off: a person turns
    # each on again (the release re-arms none).
    disabled_schedules: list[int] = field(default_factory=list)
    # False from the first row loaded until the campaigns are paused and the schedules off:
    # a restore killed or failed in between leaves a hold that still holds.
    finished: bool = True

    def to_json(self) -> str:
        return json.dumps(
            {
                "restored_at": self.restored_at.isoformat(),
                "archive_created_at": (
                    self.archive_created_at.isoformat() if self.archive_created_at else None
                ),
                "archive_name": self.archive_name,
                "schema_revision": self.schema_revision,
                "paused_campaigns": self.paused_campaigns,
                "unscheduled_campaigns": self.unscheduled_campaigns,
                "disabled_schedules": self.disabled_schedules,
                "finished": self.finished,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> RestoreHold:
        try:
            data = json.loads(text)
            restored_at = datetime.fromisoformat(data["restored_at"])
        except (ValueError, KeyError, TypeError):
            # A hold we cannot read still holds: never send because a value is damaged.
            return cls(restored_at=datetime.now(UTC), archive_created_at=None, finished=False)
        created = data.get("archive_created_at")
        return cls(
            restored_at=restored_at,
            archive_created_at=datetime.fromisoformat(created) if created else None,
            archive_name=str(data.get("archive_name") or ""),
            schema_revision=str(data.get("schema_revision") or ""),
            paused_campaigns=[int(i) for i in data.get("paused_campaigns") or []],
            unscheduled_campaigns=[int(i) for i in data.get("unscheduled_campaigns") or []],
            disabled_schedules=[int(i) for i in data.get("disabled_schedules") or []],
            finished=bool(data.get("finished", True)),
        )


def restore_hold() -> RestoreHold | None:
    """The hold this installation is under, or None."""
    value = db.session.scalar(
        select(InstallationSetting.value).where(InstallationSetting.name == SETTING)
    )
    if not value:
        return None
    return RestoreHold.from_json(value)


def sending_is_held() -> bool:
    """Whether a restore hold stands: nothing may be launched, fired or sent."""
    return bool(
        db.session.scalar(
            select(InstallationSetting.value).where(InstallationSetting.name == SETTING)
        )
    )


# Why a launch is refused and a send job sends nothing while the hold stands.
SENDING_HELD = _l(
    "this installation was restored from a backup and sends nothing until an "
    "administrator confirms on the page Restore from backup"
)


def held_reason() -> str:
    """SENDING_HELD as a campaign's stored reason (a stored_text message)."""
    return stored_text.dump(SENDING_HELD)


def place_restore_hold(
    *,
    archive_created_at: datetime | None,
    archive_name: str = "",
    schema_revision: str = "",
    now: datetime | None = None,
) -> RestoreHold:
    """Hold all sending: pause the campaigns that were sending, turn off send-at dates of
    scheduled ones (back to draft, saying why), turn off every follow-up, yearly and sign-on
    reminder schedule (recorded: a person turns each on again), and record the hold; audited.
    Also finishes a hold the restore wrote with its first row (`finished` False)."""
    now = now or datetime.now(UTC)
    earlier = restore_hold()
    paused: list[int] = list(earlier.paused_campaigns) if earlier else []
    unscheduled: list[int] = list(earlier.unscheduled_campaigns) if earlier else []
    disabled: list[int] = list(earlier.disabled_schedules) if earlier else []
    for campaign in db.session.scalars(
        select(Campaign)
        .where(Campaign.status.in_([CampaignStatus.SENDING.value, CampaignStatus.SCHEDULED.value]))
        .order_by(Campaign.id)
    ):
        if campaign.status == CampaignStatus.SENDING.value:
            # The pause of the pages (status and reason), without the stop flag in Redis:
            # no batch of this copy runs yet, and the restore may have no Redis at hand.
            campaign.status = CampaignStatus.PAUSED.value
            campaign.status_reason = stored_text.dump(PAUSED_BY_RESTORE)
            record_event(
                "campaign.pause",
                target_type="campaign",
                target_id=campaign.id,
                detail={"reason": "restored from a backup"},
            )
            paused.append(campaign.id)
        else:
            send_at = campaign.send_at
            _turn_off_send_at(campaign)
            campaign.status_reason = stored_text.dump(
                _l(
                    "restored from a backup: its send-at (%(when)s UTC) was turned off; "
                    "schedule or launch it again once the restore is confirmed",
                    when=send_at.strftime("%Y-%m-%d %H:%M") if send_at else "?",
                )
            )
            unscheduled.append(campaign.id)
    for schedule in db.session.scalars(
        select(Schedule)
        .where(Schedule.kind.in_(HELD_SCHEDULE_KINDS), Schedule.is_enabled.is_(True))
        .order_by(Schedule.id)
    ):
        schedule.is_enabled = False
        disabled.append(schedule.id)
    hold = RestoreHold(
        restored_at=now,
        archive_created_at=archive_created_at,
        archive_name=archive_name,
        schema_revision=schema_revision,
        paused_campaigns=paused,
        unscheduled_campaigns=unscheduled,
        disabled_schedules=disabled,
        finished=True,
    )
    setting = db.session.get(InstallationSetting, SETTING)
    if setting is None:
        setting = InstallationSetting(name=SETTING)
        db.session.add(setting)
    setting.value = hold.to_json()
    setting.updated_at = now
    record_event(
        "backup.restore_hold",
        detail={
            "archive": archive_name,
            "archive_created_at": (archive_created_at.isoformat() if archive_created_at else None),
            "paused_campaigns": paused,
            "unscheduled_campaigns": unscheduled,
            "disabled_schedules": disabled,
        },
    )
    db.session.flush()
    return hold


def _turn_off_send_at(campaign: Campaign) -> None:
    # As campaign.scheduling.schedules.cancel_send_at, which this module cannot import (the
    # launch imports this module, and that one imports the launch).
    for schedule in db.session.scalars(
        select(Schedule).where(
            Schedule.kind == ScheduleKind.SEND_AT.value,
            Schedule.campaign_id == campaign.id,
            Schedule.is_enabled.is_(True),
        )
    ):
        schedule.is_enabled = False
        schedule.next_run_at = None
    campaign.status = CampaignStatus.DRAFT.value
    campaign.send_at = None
    record_event(
        "campaign.unschedule",
        target_type="campaign",
        target_id=campaign.id,
        detail={"reason": "restored from a backup"},
    )


def unfinished_hold_json(
    *, archive_created_at: datetime | None, archive_name: str, schema_revision: str
) -> str:
    """The hold the restore writes before its first row (finished by place_restore_hold)."""
    return RestoreHold(
        restored_at=datetime.now(UTC),
        archive_created_at=archive_created_at,
        archive_name=archive_name,
        schema_revision=schema_revision,
        finished=False,
    ).to_json()


class HoldNotFinished(Exception):
    """The restore stopped before pausing the campaigns: the release finished it instead."""


def release_restore_hold(by: User | None) -> bool:
    """Let this installation send again (campaigns stay paused until resumed each, schedules
    off until turned on each); audited. False if there was no hold. A hold whose restore
    stopped half-way is finished instead (campaigns paused, schedules off) and stays:
    HoldNotFinished, so that a person sees the lists before confirming again."""
    setting = db.session.get(InstallationSetting, SETTING)
    if setting is None or not setting.value:
        return False
    hold = RestoreHold.from_json(setting.value)
    if not hold.finished:
        place_restore_hold(
            archive_created_at=hold.archive_created_at,
            archive_name=hold.archive_name,
            schema_revision=hold.schema_revision,
        )
        raise HoldNotFinished
    db.session.delete(setting)
    if hold.disabled_schedules:
        # The schedules the hold turned off stay off: the restore page lists them, and a
        # person turns each on again (turn_schedule_on).
        kept = db.session.get(InstallationSetting, SCHEDULES_OFF)
        if kept is None:
            kept = InstallationSetting(name=SCHEDULES_OFF)
            db.session.add(kept)
        kept.value = json.dumps(
            {
                "ids": hold.disabled_schedules,
                "archive_created_at": (
                    hold.archive_created_at.isoformat() if hold.archive_created_at else None
                ),
            }
        )
        kept.updated_at = datetime.now(UTC)
    record_event(
        "backup.restore_release",
        actor=by,
        detail={
            "restored_at": hold.restored_at.isoformat(),
            "archive_created_at": (
                hold.archive_created_at.isoformat() if hold.archive_created_at else None
            ),
        },
    )
    db.session.flush()
    return True


@dataclass(frozen=True)
class ScheduleOff:
    """A schedule the restore turned off and nobody has turned on again."""

    schedule: Schedule
    # Due between the backup and now: turned on, it fires at the next tick.
    due_since_backup: bool


def _schedules_off() -> tuple[list[int], datetime | None]:
    hold = restore_hold()
    if hold is not None:
        return hold.disabled_schedules, hold.archive_created_at
    value = db.session.scalar(
        select(InstallationSetting.value).where(InstallationSetting.name == SCHEDULES_OFF)
    )
    if not value:
        return [], None
    try:
        data = json.loads(value)
        created = data.get("archive_created_at")
        return [int(i) for i in data.get("ids") or []], (
            datetime.fromisoformat(created) if created else None
        )
    except (ValueError, TypeError, AttributeError):
        return [], None


def schedules_turned_off(now: datetime | None = None) -> list[ScheduleOff]:
    """The follow-up, yearly and reminder schedules the restore turned off, still off;
    those due since the backup was made first."""
    ids, made = _schedules_off()
    if not ids:
        return []
    now = now or datetime.now(UTC)
    found = []
    for schedule in db.session.scalars(
        select(Schedule).where(Schedule.id.in_(ids), Schedule.is_enabled.is_(False))
    ):
        due = schedule.next_run_at
        found.append(
            ScheduleOff(
                schedule=schedule,
                due_since_backup=due is not None and due <= now and (made is None or due >= made),
            )
        )
    found.sort(key=lambda off: (not off.due_since_backup, off.schedule.id))
    return found


def turn_schedule_on(schedule_id: int, by: User | None) -> Schedule | None:
    """Turn on again a schedule the restore turned off (a person's decision); audited.
    None if it is not one of them (or is on already)."""
    ids, _made = _schedules_off()
    if schedule_id not in ids:
        return None
    schedule = db.session.get(Schedule, schedule_id)
    if schedule is None or schedule.is_enabled:
        return None
    schedule.is_enabled = True
    record_event(
        "backup.schedule_on",
        actor=by,
        target_type="schedule",
        target_id=schedule.id,
        detail={"kind": schedule.kind, "campaign_id": schedule.campaign_id},
    )
    db.session.flush()
    return schedule
