"""The `campaign inbound` command: record .eml files, mbox files and maildirs as if fetched.

Messages are committed in batches (a commit and the transaction around it cost more than
storing a message: decision 0016, "Measured"), and a batch's lines are printed only after
its commit, so every printed line is stored. A crash loses at most the unprinted batch,
which a re-run records (each message is stored once, by the SHA-256 of its bytes). A
message that fails rolls its batch back; the batch is then recorded again one message at
a time, so the others are stored and the output is what a message-by-message run prints.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask_babel import gettext as _

from campaign.commands import CommandError
from campaign.inbound.sources import messages_in_path

# A batch ends at this many messages or this many bytes of them, whichever comes first:
# its messages are kept until its commit, to be recorded again if one of them fails.
BATCH_MESSAGES = 100
BATCH_BYTES = 16 * 1024 * 1024


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

    try:
        db.session.execute(select(InboundMessage.id).limit(1))
    except SQLAlchemyError:
        db.session.rollback()
        raise CommandError(
            _("the database cannot store inbound mail; run `campaign db upgrade` first")
        ) from None
    for line in record_paths(paths):
        click.echo(json.dumps(line, ensure_ascii=False))


@dataclass
class _Batch:
    # (the line so far, the message's bytes or None when it could not be read)
    items: list[tuple[dict[str, Any], bytes | None]] = field(default_factory=list)
    size: int = 0

    def add(self, line: dict[str, Any], raw: bytes | None) -> None:
        self.items.append((line, raw))
        self.size += len(raw or b"")

    def is_full(self) -> bool:
        return len(self.items) >= BATCH_MESSAGES or self.size >= BATCH_BYTES


def record_paths(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """Record every message in `paths`; one line each, yielded once it is committed."""
    batch = _Batch()
    for path in paths:
        for index, raw in messages_in_path(path):
            line: dict[str, Any] = {"file": str(path)}
            if index is not None:
                line["index"] = index
            batch.add(line, raw)
            if batch.is_full():
                yield from _recorded(batch)
                batch = _Batch()
    yield from _recorded(batch)


def _recorded(batch: _Batch) -> list[dict[str, Any]]:
    from campaign.extensions import db

    try:
        lines = [_record(line, raw) for line, raw in batch.items]
        db.session.commit()
    except Exception:  # one bad message must not stop the others: see the module's note
        db.session.rollback()
        return [_record_alone(line, raw) for line, raw in batch.items]
    return lines


def _record_alone(line: dict[str, Any], raw: bytes | None) -> dict[str, Any]:
    from campaign.extensions import db

    try:
        answered = _record(line, raw)
        db.session.commit()
    except Exception as error:
        db.session.rollback()
        return _unrecorded(line, f"not recorded: {type(error).__name__}")
    return answered


def _record(line: dict[str, Any], raw: bytes | None) -> dict[str, Any]:
    from campaign.services.replies.intake import record_inbound

    if raw is None:
        return _unrecorded(line, "could not be read")
    result = record_inbound(raw)
    return {
        **line,
        "kind": result.kind,
        "delivery_id": result.delivery_id,
        "recipients": list(result.recipients),
        "bounce": result.bounce_kind,
    }


def _unrecorded(line: dict[str, Any], problem: str) -> dict[str, Any]:
    return {
        **line,
        "kind": "unmatched",
        "delivery_id": None,
        "recipients": [],
        "bounce": None,
        "problems": [problem],
    }
