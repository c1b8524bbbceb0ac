"""The `campaign add-mailbox` and `campaign poll-inbox` commands: IMAP reply mailboxes."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError


def register(app: Flask) -> None:
    app.cli.add_command(add_mailbox_command)
    app.cli.add_command(poll_inbox_command)


@click.command("add-mailbox")
@click.argument("name")
@click.option("--host", required=True, help="IMAP server host name.")
@click.option("--port", type=int, default=993, show_default=True)
@click.option(
    "--security",
    type=click.Choice(["ssl", "starttls", "none"]),
    default="ssl",
    show_default=True,
    help="none (a clear-text login) only for a server on this machine.",
)
@click.option("--user", "username", required=True, help="IMAP user name.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (never from the command line).",
)
@click.option("--folder", default="INBOX", show_default=True, help="Folder to watch.")
@click.option(
    "--processed-folder",
    default="Processed",
    show_default=True,
    help='Folder handled mail is moved to ("" leaves it in place).',
)
def add_mailbox_command(
    name: str,
    host: str,
    port: int,
    security: str,
    username: str,
    password_stdin: bool,
    folder: str,
    processed_folder: str,
) -> None:
    """Add IMAP mailbox NAME to poll for replies; its password is stored encrypted."""
    from campaign.extensions import db
    from campaign.services.replies import mailboxes

    password = ""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError(_("--password-stdin: standard input held no password"))
    try:
        mailbox = mailboxes.add_mailbox(
            name,
            host=host,
            port=port,
            security=security,
            username=username,
            password=password,
            folder=folder,
            processed_folder=processed_folder,
        )
    except mailboxes.MailboxError as error:
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(_("added mailbox %(name)s (%(id)s)", name=mailbox.name, id=mailbox.id))


@click.command("poll-inbox")
@click.option("--mailbox", "name", default=None, help="Poll only this mailbox.")
def poll_inbox_command(name: str | None) -> None:
    """Poll the enabled IMAP mailboxes (or one) once and say what each one did."""
    from campaign.extensions import db
    from campaign.services.replies import mailboxes

    if name is not None:
        found = mailboxes.find_mailbox(name)
        if found is None:
            raise CommandError(
                _("no mailbox named %(name)s (see campaign add-mailbox)", name=repr(name))
            )
        targets = [found]
    else:
        targets = mailboxes.enabled_mailboxes()
        if not targets:
            click.echo(_("no enabled mailboxes (add one with campaign add-mailbox)"))
            return
    for mailbox in targets:
        report = mailboxes.poll_mailbox(mailbox, commit=db.session.commit)
        click.echo(report.summary())
