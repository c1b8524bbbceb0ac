"""`campaign dkim-key`: an SMTP account's DKIM key, and the DNS record to publish for it."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError


def register(app: Flask) -> None:
    app.cli.add_command(dkim_key_command)


@click.command("dkim-key")
@click.argument("account")
@click.option("--selector", default=None, help="DNS selector (one label); default campaignYYYYMM.")
@click.option(
    "--algorithm",
    type=click.Choice(["rsa", "ed25519"]),
    default="rsa",
    show_default=True,
    help="rsa (2048 bits, read by every receiver) or ed25519 (RFC 8463).",
)
@click.option("--domain", default=None, help="Signing domain (d=); default the sender's domain.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Import this PEM private key instead of generating one.",
)
@click.option(
    "--key-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help='For the account "default": where to write the new key (CAMPAIGN_DKIM_PRIVATE_KEY_FILE).',
)
@click.option("--remove", is_flag=True, help="Remove the account's key: it signs no more.")
def dkim_key_command(
    account: str,
    selector: str | None,
    algorithm: str,
    domain: str | None,
    key_file: Path | None,
    key_out: Path | None,
    remove: bool,
) -> None:
    """Create (or import) the DKIM key of SMTP account ACCOUNT and print its DNS TXT record."""
    from campaign import dkim
    from campaign.extensions import db
    from campaign.services.sending import smtp_accounts

    key_pem: str | None = None
    source = ""
    if key_file is not None:
        source = str(key_file)
        try:
            key_pem = key_file.read_text("utf-8", errors="replace")
        except OSError as error:
            raise CommandError(
                _(
                    "--key-file: %(path)s cannot be read (%(reason)s)",
                    path=source,
                    reason=error.strerror or type(error).__name__,
                )
            ) from None
    if account.strip().lower() == smtp_accounts.DEFAULT_KEY:
        chosen = selector or smtp_accounts.fresh_selector(None, domain or "")
        _default_account(chosen, algorithm, domain, key_pem, source, key_out, remove)
        return
    found = smtp_accounts.find_account(account)
    if found is None:
        raise CommandError(
            _("no SMTP account named “%(name)s” (see the SMTP accounts page)", name=account)
        )
    chosen = selector or smtp_accounts.fresh_selector(found, domain or "")
    if remove:
        smtp_accounts.remove_dkim_key(found)
        db.session.commit()
        click.echo(
            _("removed the DKIM key of %(name)s: its mail goes out unsigned", name=found.name)
        )
        return
    try:
        info = smtp_accounts.set_dkim_key(
            found,
            selector=chosen,
            domain=domain or "",
            algorithm=algorithm,
            key_pem=key_pem,
            source=source,
        )
    except dkim.DkimError as error:
        db.session.rollback()
        raise CommandError(str(error)) from None
    db.session.commit()
    click.echo(
        _(
            "%(name)s now signs for %(domain)s with selector %(selector)s (%(algorithm)s). "
            "Publish this DNS record before sending:",
            name=found.name,
            domain=info.domain,
            selector=info.selector,
            algorithm=info.algorithm,
        )
    )
    click.echo(info.zone_line)
    if key_file is not None:
        click.echo(
            _(
                "The key is now stored encrypted: delete the plain copy %(path)s (and any "
                "backup of it), so that the private key is not left readable on disk.",
                path=source,
            )
        )


def _default_account(
    selector: str,
    algorithm: str,
    domain: str | None,
    key_pem: str | None,
    source: str,
    key_out: Path | None,
    remove: bool,
) -> None:
    """The default account's key lives in a file named by the configuration, not in a row."""
    from campaign import dkim
    from campaign.services.sending import smtp_accounts

    if remove:
        raise CommandError(
            _(
                "the default account's key is set in the server's environment: unset "
                "CAMPAIGN_DKIM_DOMAIN, CAMPAIGN_DKIM_SELECTOR and CAMPAIGN_DKIM_PRIVATE_KEY_FILE"
            )
        )
    if key_pem is None and key_out is None:
        raise CommandError(
            _(
                "the default account reads its key from a file: give --key-out FILE for a "
                "new key (or --key-file FILE to check one)"
            )
        )
    try:
        if key_pem is None:
            key_pem = dkim.generate_key(algorithm)
        signer = dkim.signer_from_pem(
            domain or smtp_accounts.default_dkim_domain(), selector, key_pem, source=source
        )
        # Not the name of another account's record: one DNS name holds one key.
        smtp_accounts.refuse_selector_of_another_account(None, signer.selector, signer.domain)
    except dkim.DkimError as error:
        raise CommandError(str(error)) from None
    path = Path(source) if key_out is None else key_out
    if key_out is not None:
        try:
            # Created new, readable by this user only: never over an existing key.
            fd = os.open(key_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            raise CommandError(
                _(
                    "--key-out: %(path)s cannot be created (%(reason)s)",
                    path=str(key_out),
                    reason=error.strerror or type(error).__name__,
                )
            ) from None
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key_pem)
    click.echo(_("Set in the server's environment:"))
    click.echo(f"CAMPAIGN_DKIM_DOMAIN={signer.domain}")
    click.echo(f"CAMPAIGN_DKIM_SELECTOR={signer.selector}")
    click.echo(f"CAMPAIGN_DKIM_PRIVATE_KEY_FILE={path.resolve()}")
    click.echo(_("Publish this DNS record before sending:"))
    click.echo(signer.record)
