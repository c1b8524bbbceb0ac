"""The `campaign schedules` and `campaign tick` commands: what is scheduled, and firing it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flask import Flask


def register(app: Flask) -> None:
    app.cli.add_command(schedules_command)
    app.cli.add_command(tick_command)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@click.command("schedules")
def schedules_command() -> None:
    """List schedules, one a line: id, kind, name, next run in UTC and in its own zone."""
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models.schedule import Schedule
    from campaign.scheduling.timezones import local_label

    rows = db.session.scalars(
        select(Schedule).order_by(Schedule.next_run_at.is_(None), Schedule.next_run_at)
    ).all()
    if not rows:
        click.echo("no schedules")
        return
    for schedule in rows:
        if schedule.next_run_at is None:
            when = "no next run"
        else:
            when = (
                f"next {_utc(schedule.next_run_at)} "
                f"({local_label(schedule.next_run_at, schedule.timezone)})"
            )
        state = "" if schedule.is_enabled else " [disabled]"
        click.echo(f"{schedule.id}\t{schedule.kind}\t{schedule.name}\t{when}{state}")


def _parse_now(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time like 2027-06-26T07:00Z", param_hint="--now"
        ) from None
    # A time without an offset is taken as UTC, as every time the scheduler keeps.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@click.command("tick")
@click.option("--now", "now_text", help="Run as of this ISO 8601 time (UTC if no offset).")
def tick_command(now_text: str | None) -> None:
    """Run the scheduler once: fire what is due, skip what is too late; print each."""
    from campaign.extensions import db
    from campaign.scheduling.tick import tick

    report = tick(_parse_now(now_text), commit=db.session.commit)
    for line in report.lines:
        click.echo(
            f"{line.outcome}\t{line.kind}\t{line.name}\tdue {_utc(line.due_at)}\t{line.detail}"
        )
    click.echo(report.summary)
