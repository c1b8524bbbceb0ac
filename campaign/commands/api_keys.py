"""`campaign api-key create|revoke|list`: API keys from the shell (the page's twin).

`create` prints the key on standard output and nothing else there, so that
`KEY=$(campaign api-key create …)` keeps just the key; what it says about the key goes to
standard error. Wrong input (an unknown account, scope or key, a scope above the account's
role) stops with exit status 2, as the other commands' input errors do. The audit log
records the key's making and revoking as done from the command line.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click
from flask import Flask
from flask_babel import gettext as _

DEFAULT_EXPIRY_DAYS = 90


def register(app: Flask) -> None:
    app.cli.add_command(api_key_group)


def _fail(message: str) -> NoReturn:
    from campaign.extensions import db

    db.session.rollback()
    click.echo(_("Error: %(message)s", message=message), err=True)
    raise click.exceptions.Exit(2)


def _user(email: str) -> Any:
    from campaign.services.accounts.users import find_user

    user = find_user(email)
    if user is None:
        _fail(_("There is no account for %(email)s.", email=email.strip()))
    return user


def _expiry(raw: str) -> int | None:
    if raw.strip().lower() == "never":
        return None
    try:
        return int(raw)
    except ValueError:
        _fail(_("--expires: write a number of days, or never."))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment is not None else "-"


@click.group("api-key")
def api_key_group() -> None:
    """Make, list and revoke API keys (Authorization: Bearer for /api/v1)."""


@api_key_group.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What uses the key, e.g. 'Website sign-on form'.")
@click.option(
    "--scopes",
    required=True,
    help="Comma-separated, e.g. contacts:read,campaigns:write (write includes read).",
)
@click.option(
    "--expires",
    default=str(DEFAULT_EXPIRY_DAYS),
    show_default=True,
    metavar="DAYS",
    help="Days until the key stops working, or 'never'.",
)
def create_command(email: str, name: str, scopes: str, expires: str) -> None:
    """Make a key for the account EMAIL and print it (once: only its hash is kept)."""
    from campaign.extensions import db
    from campaign.services.accounts import api_keys

    user = _user(email)
    wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
    try:
        made = api_keys.create_key(
            user,
            name=name,
            scopes=wanted,
            expires_in_days=_expiry(expires),
            created_by=None,
        )
    except api_keys.ApiKeyError as error:
        message = str(error)
        if error.field == "scopes":
            if not message.endswith((".", "!", "?")):
                message += "."
            message += " " + _(
                "The scopes %(email)s may have: %(scopes)s.",
                email=user.email,
                scopes=", ".join(api_keys.scopes_for(user)) or "-",
            )
        _fail(message)
    db.session.commit()
    key = made.key
    if key.expires_at is None:
        click.echo(
            _(
                "key %(id)s (%(prefix)s) for %(email)s: %(scopes)s; it never expires.",
                id=key.id,
                prefix=key.prefix,
                email=user.email,
                scopes=", ".join(key.scopes),
            ),
            err=True,
        )
    else:
        click.echo(
            _(
                "key %(id)s (%(prefix)s) for %(email)s: %(scopes)s; it expires on %(when)s UTC.",
                id=key.id,
                prefix=key.prefix,
                email=user.email,
                scopes=", ".join(key.scopes),
                when=_when(key.expires_at),
            ),
            err=True,
        )
    click.echo(_("It is shown only now; keep it somewhere safe."), err=True)
    click.echo(made.token)


@api_key_group.command("revoke")
@click.argument("key_id", metavar="ID", type=int)
def revoke_command(key_id: int) -> None:
    """Revoke the key ID (as `api-key list` shows it): it stops working at once."""
    from campaign.extensions import db
    from campaign.models import ApiKey
    from campaign.services.accounts import api_keys

    key = db.session.get(ApiKey, key_id) if 0 < key_id < 2**31 else None
    if key is None:
        _fail(_("There is no API key %(id)s.", id=key_id))
    if key.revoked_at is not None:
        click.echo(_("key %(id)s was already revoked.", id=key.id))
        return
    api_keys.revoke_key(key, by=None)
    db.session.commit()
    click.echo(_("key %(id)s (%(prefix)s) revoked.", id=key.id, prefix=key.prefix))


@api_key_group.command("list")
@click.argument("email", required=False)
def list_command(email: str | None) -> None:
    """The keys not revoked, of the account EMAIL or of everyone: id, key, account,
    name, scopes, expiry, last use."""
    from sqlalchemy import select

    from campaign.extensions import db
    from campaign.models import User, utcnow
    from campaign.services.accounts import api_keys

    if email:
        owners = [_user(email)]
    else:
        owners = list(db.session.scalars(select(User).order_by(User.email)))
    now = utcnow()
    shown = 0
    for owner in owners:
        for key in api_keys.list_keys(owner):
            expired = key.expires_at is not None and key.expires_at <= now
            expiry = _("never") if key.expires_at is None else _when(key.expires_at)
            if expired:
                expiry = _("expired %(when)s", when=expiry)
            click.echo(
                "\t".join(
                    (
                        str(key.id),
                        api_keys.shown_as(key),
                        owner.email,
                        key.name,
                        ",".join(key.scopes or []),
                        expiry,
                        _when(key.last_used_at) if key.last_used_at else _("never used"),
                    )
                )
            )
            shown += 1
    if not shown:
        click.echo(_("No API keys."), err=True)
