"""The `campaign` command: Flask's CLI group (db, run, shell…) plus our own commands."""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import os
import secrets
from collections.abc import Callable, Mapping
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, NoAppException, with_appcontext

from campaign.config import ConfigError
from campaign.i18n import DEFAULT_LANGUAGE, supported, use_reader_language

# Where a terminal says which language its user reads, in gettext's order: the first one
# set (not empty) decides (decision 0031, "The command line").
LANGUAGE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


# True while the group lists its commands (`campaign --help`): nothing runs then.
_LISTING: contextvars.ContextVar[bool] = contextvars.ContextVar("listing", default=False)


def _create_app() -> Flask:
    from campaign import create_app

    try:
        return create_app()
    except ConfigError as error:
        if not _LISTING.get():
            raise click.ClickException(str(error)) from None
        # Help only lists the commands: nothing is signed, read or sent, so an app with a
        # throwaway key shows them on a machine not configured yet.
        try:
            app = create_app({"SECRET_KEY": secrets.token_hex(32)})
        except ConfigError:
            raise NoAppException(str(error)) from None  # Flask prints it without a traceback
        # Should a command still run with it (an option whose value is "--help"), it refuses.
        app.config[_HELP_ONLY] = str(error)
        return app


_HELP_ONLY = "CAMPAIGN_HELP_ONLY"


class CampaignGroup(FlaskGroup):
    """Flask's group whose help lists our commands even before any configuration."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        listing = _LISTING.set(True)
        try:
            return super().list_commands(ctx)
        finally:
            _LISTING.reset(listing)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Each listed command is looked up again (get_command) for its short help.
        listing = _LISTING.set(True)
        try:
            super().format_commands(ctx, formatter)
        finally:
            _LISTING.reset(listing)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        # `campaign send --help`, `campaign db upgrade --help`: the command only prints its
        # help and exits while its arguments are parsed, so it is looked up as for a listing.
        own = args[1 : args.index("--")] if "--" in args else args[1:]
        if not any(arg in _HELP_OPTIONS for arg in own):
            return super().resolve_command(ctx, args)
        listing = _LISTING.set(True)
        try:
            return super().resolve_command(ctx, args)
        finally:
            _LISTING.reset(listing)


_HELP_OPTIONS = ("--help",)


def _version() -> str:
    try:
        return importlib.metadata.version("campaign")
    except importlib.metadata.PackageNotFoundError:  # a checkout run without installing it
        return "unknown"


@click.group(
    cls=CampaignGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
# Ours, not Flask's (which prints Python's, Flask's and Werkzeug's): no configuration needed.
@click.version_option(_version(), prog_name="campaign", message="%(prog)s %(version)s")
def cli() -> None:
    """Advocacy mailing and campaign automation."""


# On the group itself, not the app: it sets the development defaults the app is built with.
from campaign.commands.dev import dev_command  # noqa: E402

cli.add_command(dev_command)


@cli.command("help", with_appcontext=False)
@click.argument("names", nargs=-1)
@click.pass_context
def help_command(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Show the help of campaign, or of one command: campaign help send."""
    listing = _LISTING.set(True)  # help runs nothing: no configuration needed
    try:
        target: click.Context = ctx.find_root()
        for name in names:
            command = target.command
            found = command.get_command(target, name) if isinstance(command, click.Group) else None
            if found is None:
                raise click.UsageError(f"No such command {name!r}.", ctx)
            target = click.Context(found, info_name=name, parent=target)
        click.echo(target.get_help())
    finally:
        _LISTING.reset(listing)


def main() -> None:
    cli.main(prog_name="campaign")


def terminal_language(environ: Mapping[str, str] | None = None) -> str:
    """The interface language this terminal's user reads, by gettext's rules.

    The first of LANGUAGE, LC_ALL, LC_MESSAGES and LANG that is set decides. LANGUAGE may
    list several languages, best first ("de:ru"); the first one we have a catalogue for
    wins. "C", "POSIX" or a language without a catalogue means English.
    """
    environ = os.environ if environ is None else environ
    for name in LANGUAGE_VARIABLES:
        value = environ.get(name, "").strip()
        if not value:
            continue
        for entry in value.split(":"):
            # ru_RU.UTF-8, sr_RS@latin → ru_RU, sr_RS
            locale_name = entry.split(".", 1)[0].split("@", 1)[0]
            if locale_name in ("C", "POSIX"):
                return DEFAULT_LANGUAGE
            language = supported(locale_name)
            if language:
                return language
        return DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


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
        refusal = current_app.config.get(_HELP_ONLY)
        if refusal:
            raise click.ClickException(refusal)
        use_reader_language(terminal_language())
        return callback(*args, **kwargs)

    speaking.speaks_terminal_language = True  # type: ignore[attr-defined]
    # with_appcontext: the language is kept on the app context's `g`, which must be the one
    # the command runs in (FlaskGroup pushes it; a test's own context is reused).
    return with_appcontext(speaking)


def register_commands(app: Flask) -> None:
    from campaign.commands.accounts import register as register_users
    from campaign.commands.contacts import register as register_contacts
    from campaign.commands.dev import register as register_dev
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

    register_campaigns(app)
    register_contacts(app)
    register_connections(app)
    register_dev(app)
    register_dkim(app)
    register_inbound(app)
    register_letters(app)
    register_mailboxes(app)
    register_schedules(app)
    register_sign_on(app)
    register_statements(app)
    register_tracking(app)
    register_users(app)

    # Once per invocation, inside its app context: the language the terminal asks for.
    for command in app.cli.commands.values():
        _speaks_terminal_language(command)
