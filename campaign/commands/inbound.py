"""The `campaign inbound` command: record .eml files, mbox files and maildirs as if fetched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from flask import Flask

from campaign.inbound.sources import messages_in_path


def register(app: Flask) -> None:
    app.cli.add_command(inbound_command)


@click.command("inbound")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def inbound_command(paths: tuple[Path, ...]) -> None:
    """Record raw messages (.eml files, mbox files, maildir directories): one JSON line each."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from campaign.extensions import db
    from campaign.models import InboundMessage
    from campaign.services.inbound import record_inbound

    try:
        db.session.execute(select(InboundMessage.id).limit(1))
    except SQLAlchemyError:
        db.session.rollback()
        raise click.ClickException(
            "the database cannot store inbound mail; run `campaign db upgrade` first"
        ) from None
    for path in paths:
        for index, raw in messages_in_path(path):
            line: dict[str, Any] = {"file": str(path)}
            if index is not None:
                line["index"] = index
            if raw is None:
                line.update(kind="unmatched", delivery_id=None, recipients=[], bounce=None)
                line["problems"] = ["could not be read"]
            else:
                try:
                    result = record_inbound(raw)
                    db.session.commit()
                except Exception as error:  # one bad message must not stop the others
                    db.session.rollback()
                    line.update(kind="unmatched", delivery_id=None, recipients=[], bounce=None)
                    line["problems"] = [f"not recorded: {type(error).__name__}"]
                else:
                    line.update(
                        kind=result.kind,
                        delivery_id=result.delivery_id,
                        recipients=list(result.recipients),
                        bounce=result.bounce_kind,
                    )
            click.echo(json.dumps(line, ensure_ascii=False))
