"""The `campaign` command: Flask's CLI group (db, run, shell…) plus our own commands."""

from __future__ import annotations

import contextvars
import importlib.metadata
import secrets

import click
from flask import Flask
from flask.cli import FlaskGroup, NoAppException

from campaign.commands.registry import HELP_ONLY
from campaign.config import ConfigError

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
        app.config[HELP_ONLY] = str(error)
        return app


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
# Made on a laptop that never runs the app (the identity stays off the server): no configuration.
from campaign.commands.backups import backup_key_command  # noqa: E402

cli.add_command(backup_key_command)


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
