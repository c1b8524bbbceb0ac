"""`campaign backup`, `campaign backup-key` and `campaign restore` (decision 0087)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from flask import Flask
from flask.cli import with_appcontext
from flask_babel import format_number
from flask_babel import gettext as _

from campaign.commands import CommandError


def register(app: Flask) -> None:
    """Add `backup` and `restore` to the app (`backup-key` is on the group itself, cli.py:
    it needs no configuration)."""
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)


class _ProgressLine:
    """One line on the terminal, rewritten at most once a second."""

    def __init__(self) -> None:
        self.shown = 0.0
        self.open = False

    def show(self, line: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.shown < 1:
            return
        self.shown = now
        click.echo(f"\r{line}", err=True, nl=False)
        self.open = True
        if final:
            self.end()

    def end(self) -> None:
        if self.open:
            click.echo("", err=True)
            self.open = False


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return _("%(size)s MB", size=format_number(round(size / 1024 / 1024, 1)))
    return _("%(size)s kB", size=format_number(max(1, round(size / 1024))))


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--recipient",
    "recipients",
    multiple=True,
    help="An age public key (age1…) to encrypt to; repeat for several "
    "(default: CAMPAIGN_BACKUP_RECIPIENTS).",
)
@click.option("--with-uploads", is_flag=True, help="Also keep the uploaded contact files.")
@with_appcontext
def backup_command(file: Path, recipients: tuple[str, ...], with_uploads: bool) -> None:
    """Write an encrypted backup of the database and instance files to FILE."""
    from campaign.services.backups.archive import BackupError, configured_recipients, write_backup

    line = _ProgressLine()

    def progress(done: int, total: int) -> None:
        line.show(
            _(
                "backing up: %(done)s of %(total)s rows",
                done=format_number(done),
                total=format_number(total),
            ),
            final=False,
        )

    started = time.monotonic()
    try:
        manifest = write_backup(
            file,
            list(recipients) or configured_recipients(),
            include_uploads=with_uploads,
            progress=progress,
        )
    except BackupError as error:
        line.end()
        raise CommandError(str(error)) from None
    line.show(
        _(
            "backing up: %(done)s of %(total)s rows",
            done=format_number(sum(manifest.table_counts.values())),
            total=format_number(sum(manifest.table_counts.values())),
        ),
        final=True,
    )
    click.echo(
        _(
            "%(file)s: %(tables)d tables, %(rows)s rows, %(files)d files, %(size)s, "
            "schema %(revision)s, in %(seconds)s s",
            file=file,
            tables=len(manifest.table_counts),
            rows=format_number(sum(manifest.table_counts.values())),
            files=len(manifest.files),
            size=_size(manifest.size_bytes),
            revision=manifest.schema_revision,
            seconds=format_number(round(time.monotonic() - started, 1)),
        )
    )


@click.command("backup-key")
@click.argument("identity_file", type=click.Path(dir_okay=False, path_type=Path))
def backup_key_command(identity_file: Path) -> None:
    """Make an age key pair: the identity (secret) in IDENTITY_FILE, the public key printed."""
    from campaign.services.backups.archive import BackupError, write_identity_file

    try:
        public = write_identity_file(identity_file)
    except BackupError as error:
        raise CommandError(str(error)) from None
    click.echo(public)
    click.echo(
        _(
            "The identity (the secret half) is in %(file)s (readable by you alone). Keep it "
            "OFF the server, in a safe place; put the public key above in "
            "CAMPAIGN_BACKUP_RECIPIENTS.",
            file=identity_file,
        ),
        err=True,
    )


@click.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--identity",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The age identity file (AGE-SECRET-KEY-1…) the backup was encrypted to.",
)
@click.option(
    "--replace",
    is_flag=True,
    help="Replace whatever the database (and the instance's secret key) holds.",
)
@with_appcontext
def restore_command(file: Path, identity: Path, replace: bool) -> None:
    """Restore FILE into the configured (empty) database; sending stays held until an
    admin confirms on the restore page."""
    from campaign.services.backups.restore import RestoreError, restore_backup

    line = _ProgressLine()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "check":
            text = _("checking the archive: %(done)s rows", done=format_number(done))
        else:
            text = _(
                "restoring: %(done)s of %(total)s rows",
                done=format_number(done),
                total=format_number(total),
            )
        line.show(text)

    started = time.monotonic()
    try:
        result = restore_backup(file, identity, replace=replace, progress=progress)
    except RestoreError as error:
        line.end()
        raise CommandError(str(error)) from None
    line.show(
        _(
            "restoring: %(done)s of %(total)s rows",
            done=format_number(result.rows),
            total=format_number(result.rows),
        ),
        final=True,
    )
    manifest = result.manifest
    click.echo(
        _(
            "restored %(rows)s rows of %(tables)d tables and %(files)d files from the backup "
            "of %(when)s (schema %(revision)s) in %(seconds)s s",
            rows=format_number(result.rows),
            tables=len(manifest.table_counts),
            files=len(result.files),
            when=manifest.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            revision=manifest.schema_revision,
            seconds=format_number(round(time.monotonic() - started, 1)),
        )
    )
    hold = result.hold
    click.echo(
        _(
            "Sending is held: this copy sends nothing until an administrator confirms on the "
            "page Restore from backup (%(paused)d campaigns paused, %(unscheduled)d send-at "
            "dates turned off).",
            paused=len(hold.paused_campaigns) if hold else 0,
            unscheduled=len(hold.unscheduled_campaigns) if hold else 0,
        )
    )
    sys.stdout.flush()
