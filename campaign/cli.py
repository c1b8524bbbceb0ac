"""The `campaign` command: Flask's CLI group (db, run, shell…) plus our own commands."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from campaign.config import ConfigError


def _create_app() -> Flask:
    from campaign import create_app

    try:
        return create_app()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    set_debug_flag=False,
)
def cli() -> None:
    """Advocacy mailing and campaign automation."""


# On the group itself, not the app: it sets the development defaults the app is built with.
from campaign.commands.dev import dev_command  # noqa: E402

cli.add_command(dev_command)


def main() -> None:
    cli.main(prog_name="campaign")


def register_commands(app: Flask) -> None:
    from campaign.commands.campaigns import register as register_campaigns
    from campaign.commands.contacts import register as register_contacts
    from campaign.commands.dev import register as register_dev
    from campaign.commands.inbound import register as register_inbound
    from campaign.commands.letters import register as register_letters
    from campaign.commands.mailboxes import register as register_mailboxes
    from campaign.commands.schedules import register as register_schedules
    from campaign.commands.sign_on import register as register_sign_on
    from campaign.commands.statements import register as register_statements
    from campaign.commands.tracking import register as register_tracking
    from campaign.commands.users import register as register_users

    register_campaigns(app)
    register_contacts(app)
    register_dev(app)
    register_inbound(app)
    register_letters(app)
    register_mailboxes(app)
    register_schedules(app)
    register_sign_on(app)
    register_statements(app)
    register_tracking(app)
    register_users(app)
