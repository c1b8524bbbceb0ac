"""The app's own commands, registered in one place, each made to speak the terminal's language.

create_app calls `register_commands`; campaign/cli.py, the `campaign` entry point, builds
the group around create_app. Kept apart from cli.py so that the app factory does not import
the entry point that imports it (and from commands/__init__.py, which every command module
imports for CommandError).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext

from campaign.i18n import terminal_language, use_reader_language

# Set by cli.py on an app built only to list the commands (no configuration yet): a
# command that still runs with it (an option whose value is "--help") refuses, saying why.
HELP_ONLY = "CAMPAIGN_HELP_ONLY"


def _speaks_terminal_language(command: click.Command) -> None:
    """Make `command` (each command of a group) print in the terminal's language."""
    if isinstance(command, click.Group):
        for subcommand in command.commands.values():
            _speaks_terminal_language(subcommand)
        return
    callback = command.callback
    # The command objects are module-level: every app built in a process registers them.
    if callback is None or getattr(callback, "speaks_terminal_language", False):
        return
    command.callback = _in_terminal_language(callback)


def _in_terminal_language(callback: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def speaking(*args: Any, **kwargs: Any) -> Any:
        refusal = current_app.config.get(HELP_ONLY)
        if refusal:
            raise click.ClickException(refusal)
        use_reader_language(terminal_language())
        return callback(*args, **kwargs)

    speaking.speaks_terminal_language = True  # type: ignore[attr-defined]
    # with_appcontext: the language is kept on the app context's `g`, which must be the one
    # the command runs in (FlaskGroup pushes it; a test's own context is reused).
    return with_appcontext(speaking)


class _MigrationCommands(click.Group):
    """Flask-Migrate's `db` group, whose commands (and Alembic) are imported when one is
    looked up: listing `campaign`'s commands or running any other one imports neither
    (~0.1 s of every process start, decision 0085). Its options and callback are those of
    `flask_migrate.cli.db`, which `flask_migrate` reads from `g`."""

    def _group(self) -> click.Group:
        from flask_migrate.cli import db as migration_group

        _speaks_terminal_language(migration_group)
        return migration_group

    def list_commands(self, ctx: click.Context) -> list[str]:
        return self._group().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._group().get_command(ctx, cmd_name)


@with_appcontext
def _migration_options(directory: str | None, x_arg: tuple[str, ...]) -> None:
    g.directory = directory
    g.x_arg = x_arg  # read by flask_migrate's Migrate.get_config()


_MIGRATIONS = _MigrationCommands(
    "db",
    callback=_migration_options,
    help="Perform database migrations.",
    params=[
        click.Option(
            ["-d", "--directory"],
            default=None,
            help='Migration script directory (default is "migrations")',
        ),
        click.Option(
            ["-x", "--x-arg"],
            multiple=True,
            help="Additional arguments consumed by custom env.py scripts",
        ),
    ],
)


def register_commands(app: Flask) -> None:
    """Add every command module's commands to the app (create_app calls this)."""
    from campaign.commands.accounts import register as register_users
    from campaign.commands.api_keys import register as register_api_keys
    from campaign.commands.backups import register as register_backups
    from campaign.commands.contacts import register as register_contacts
    from campaign.commands.demo import register as register_demo
    from campaign.commands.erasure import register_erasure
    from campaign.commands.privacy import register as register_privacy
    from campaign.commands.replies.inbound import register as register_inbound
    from campaign.commands.replies.mailboxes import register as register_mailboxes
    from campaign.commands.schedules import register as register_schedules
    from campaign.commands.sending.campaigns import register as register_campaigns
    from campaign.commands.sending.connections import register as register_connections
    from campaign.commands.sending.dkim import register as register_dkim
    from campaign.commands.sign_on import register as register_sign_on
    from campaign.commands.statements.letters import register as register_letters
    from campaign.commands.statements.statements import register as register_statements
    from campaign.commands.tracking import register as register_tracking

    app.cli.add_command(_MIGRATIONS)
    register_api_keys(app)
    register_backups(app)
    register_campaigns(app)
    register_contacts(app)
    register_connections(app)
    register_demo(app)
    register_dkim(app)
    register_erasure(app)
    register_inbound(app)
    register_letters(app)
    register_mailboxes(app)
    register_privacy(app)
    register_schedules(app)
    register_sign_on(app)
    register_statements(app)
    register_tracking(app)
    register_users(app)

    # Once per invocation, inside its app context: the language the terminal asks for.
    for command in app.cli.commands.values():
        _speaks_terminal_language(command)
