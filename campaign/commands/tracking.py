"""The `campaign flush-tracking` command: write buffered open and click hits to the database."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

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
    notes = [f"{report.written} events written"]
    if report.duplicates:
        notes.append(f"{report.duplicates} already stored")
    if report.dropped:
        notes.append(f"{report.dropped} dropped (unreadable, or their delivery was deleted)")
    if report.recovered_lists:
        notes.append(f"{report.recovered_lists} interrupted flushes recovered")
    click.echo(", ".join(notes))
