"""The `campaign flush-tracking` command: write buffered open and click hits to the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from flask_babel import ngettext

if TYPE_CHECKING:
    from flask import Flask


def register(app: Flask) -> None:
    app.cli.add_command(flush_tracking_command)


@click.command("flush-tracking")
def flush_tracking_command() -> None:
    """Write the open and click hits waiting in Redis to the database; print how many."""
    from campaign.extensions import db
    from campaign.tracking.buffer import flush_hits

    report = flush_hits(commit=db.session.commit)
    notes = [ngettext("%(num)d event written", "%(num)d events written", report.written)]
    if report.duplicates:
        notes.append(
            ngettext("%(num)d already stored", "%(num)d already stored", report.duplicates)
        )
    if report.dropped:
        notes.append(
            ngettext(
                "%(num)d dropped (unreadable, or its delivery was deleted)",
                "%(num)d dropped (unreadable, or their delivery was deleted)",
                report.dropped,
            )
        )
    if report.recovered_lists:
        notes.append(
            ngettext(
                "%(num)d interrupted flush recovered",
                "%(num)d interrupted flushes recovered",
                report.recovered_lists,
            )
        )
    click.echo(", ".join(notes))
